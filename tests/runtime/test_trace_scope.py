"""``capture_trace()`` is scoped: a capture sees the events of the runtimes run from the thread
that captures (their apartment threads included), never those of a runtime another thread runs
at the same time. ``explore(executor=ThreadPoolExecutor(...))`` runs scenarios in threads at
once, and its result must equal ``workers=1``'s even when a scenario's outcome reads its trace.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import comsim
from comsim import hresult as hr
from comsim.testing import Trace, capture_trace, explore, run

from ..helpers import pair, until_cancelled
from ..testing.scenarios import two_callers

CALLS = 5


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads take turns at the GIL often, so that runs in two threads interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _in_two_threads(body: Callable[[str, threading.Barrier], Trace]) -> dict[str, Trace]:
    """``body(name, barrier)`` in two threads at once ("a" and "b"); their captures."""
    barrier = threading.Barrier(2, timeout=30)
    got: dict[str, Trace] = {}
    failed: list[BaseException] = []

    def thread(name: str) -> None:
        try:
            got[name] = body(name, barrier)
        except BaseException as exc:  # reported by the test
            failed.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=thread, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]
    return got


async def _calls(rt: comsim.Runtime, name: str, barrier: threading.Barrier,
                 capture: bool = True) -> Trace:
    """Both threads' captures are active while each makes its calls (the barriers); without
    ``capture``, this thread makes its calls while the other captures."""
    p = await pair(rt, server=f"{name}-srv", client=f"{name}-cli")

    async def add() -> None:
        for i in range(CALLS):
            assert await p.proxy.Add(i, 1) == i + 1

    events = Trace()
    with capture_trace() if capture else contextlib.nullcontext(events) as events:
        barrier.wait()  # the other thread captures too from here
        await p.client.run(add)
        barrier.wait()  # ... until here
    return events


def _own_only(got: dict[str, Trace]) -> None:
    for name, events in got.items():
        sent = events.events("call.sent")
        assert len(sent) == CALLS, (name, events.names())
        # the server side's events too (on the threaded runtime, from the server STA's thread)
        assert len(events.events("call.dispatched")) == CALLS, (name, events.names())
        names = {e[k] for e in events for k in ("client", "server") if k in e}
        assert names == {f"{name}-cli", f"{name}-srv"}, (name, names)


def test_deterministic_runs_in_two_threads_capture_their_own_events_only() -> None:
    def body(name: str, barrier: threading.Barrier) -> Trace:
        async def main() -> Trace:
            async with comsim.Runtime(deterministic=True, seed=1) as rt:
                return await _calls(rt, name, barrier)

        return run(main)

    _own_only(_in_two_threads(body))


def test_threaded_runtimes_in_two_threads_capture_their_own_events_only() -> None:
    # the server's events come from its STA's own thread: a capture takes in the events of its
    # runtime's apartment threads, not only its own thread's
    def body(name: str, barrier: threading.Barrier) -> Trace:
        import asyncio

        async def main() -> Trace:
            async with comsim.Runtime() as rt:
                return await _calls(rt, name, barrier)

        return asyncio.run(main())

    _own_only(_in_two_threads(body))


def test_a_capture_sees_nothing_of_a_threaded_runtime_another_thread_runs() -> None:
    # b captures nothing, its calls run at the same time as a's, on threads of their own
    def body(name: str, barrier: threading.Barrier) -> Trace:
        import asyncio

        async def main() -> Trace:
            async with comsim.Runtime() as rt:
                return await _calls(rt, name, barrier, capture=name == "a")

        return asyncio.run(main())

    got = _in_two_threads(body)
    assert got["b"] == []
    del got["b"]
    _own_only(got)


def test_capture_in_a_unit_sees_its_runtime_from_its_sta_thread() -> None:
    # a capture entered by code in an STA (its own thread on the threaded runtime) belongs to
    # that STA's runtime: it sees the server STA's events as well
    import asyncio

    async def main() -> Trace:
        async with comsim.Runtime() as rt:
            p = await pair(rt)

            async def add() -> Trace:
                with capture_trace() as events:
                    assert await p.proxy.Add(1, 2) == 3
                return events

            return await p.client.run(add)

    events = asyncio.run(main())
    assert events.names(method="Add") == ["call.sent", "call.arrived", "call.dispatched",
                                          "call.returned", "call.completed"]


async def traced_two_callers(rt: comsim.Runtime) -> tuple[Any, ...]:
    """``two_callers``, its outcome also what its capture saw: the events, by name."""
    with capture_trace() as events:
        seen = await two_callers(rt)
    return seen, tuple(events.names())


@pytest.mark.usefixtures("fast_switching")
def test_explore_on_threads_equals_one_worker_when_outcomes_read_the_trace() -> None:
    one = explore(traced_two_callers, range(40))
    with ThreadPoolExecutor(2) as pool:
        two = explore(traced_two_callers, range(40), executor=pool)
    assert dict(one) == dict(two) and one.counts == two.counts
    assert one.schedules == two.schedules
    # every outcome's trace is its own run's: four calls, each sent and completed once
    for _seen, names in one:
        assert names.count("call.sent") == names.count("call.completed") == 4


class IHold(comsim.Interface):
    async def Hold(self) -> str: ...


class Hold(comsim.CoClass, IHold):
    """``Hold`` runs until its call is cancelled, having said it started."""

    def __init__(self, started: threading.Event) -> None:
        super().__init__()
        self.started = started

    async def Hold(self) -> str:
        self.started.set()
        await until_cancelled()
        return "cancelled"


def test_a_cancel_from_a_plain_thread_is_in_the_capture_of_the_calls_runtime() -> None:  # R31
    # CoCancelCall from a plain thread, which runs no runtime: the cancel's events belong to
    # the runtime of the call, whose thread captures
    import asyncio

    started = threading.Event()
    got: list[int] = []

    def canceller(tid: int) -> None:
        assert started.wait(30)
        got.append(asyncio.run(comsim.CoCancelCall(tid, 0)))

    async def main() -> Trace:
        async with comsim.Runtime() as rt:
            p = await pair(rt, lambda: Hold(started), IHold)

            async def hold() -> str:
                comsim.CoEnableCallCancellation()
                plain = threading.Thread(target=canceller, args=(comsim.current_thread_id(),))
                plain.start()
                try:
                    return await p.proxy.Hold()
                except comsim.COMError as exc:
                    return hr.name(exc.hresult)
                finally:
                    await asyncio.to_thread(plain.join)

            with capture_trace() as events:
                assert await p.client.run(hold) == "RPC_E_CALL_CANCELED"
            return events

    events = asyncio.run(main())
    assert got == [hr.S_OK]
    assert len(events.events("call.cancel_requested", method="Hold")) == 1
