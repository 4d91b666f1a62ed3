"""Deadlocks fail, they do not hang (API.md): on the virtual-time loop, when nothing can ever run
again, ``comsim.testing.run`` raises ``comsim.testing.Deadlock`` within a second of wall time,
naming every unit that waits and what it waits on, the units queued behind them, and the
wait-for cycles. A scenario merely slow in virtual time, and real threads, are no deadlock."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import comsim
import comsim.testing
from comsim.testing import Deadlock, Wait

from ..helpers import pair
from . import deadlocks as d

HEAD = ("deadlock at virtual time {t}: nothing can ever run again (no callback ready, no "
        "timer, no message in flight) and the scenario is unfinished")


def raises_deadlock(main: Callable[..., Awaitable[Any]], *args: Any) -> Deadlock:
    """Run ``main`` (a scenario of ``deadlocks``, which notes its loop in ``SEEN``) and give the
    Deadlock it raised within a second of wall time; a watchdog thread stops the loop after
    10 s, failing the test instead of hanging it."""
    d.SEEN.clear()
    finished = threading.Event()

    def watchdog() -> None:
        loop = d.SEEN.get("loop")
        if not finished.wait(10) and loop is not None:
            loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=watchdog, daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(Deadlock) as info:
            comsim.testing.run(main, *args)
    finally:
        finished.set()
    assert time.monotonic() - start < 10.0  # its grace period is 0.1 s: no hang, even loaded
    assert d.SEEN["loop"].is_closed()  # anyio.run closed it, the remaining tasks cancelled
    return info.value


def message(t: float, waits: list[Wait], queued: int = 0, cycles: tuple[str, ...] = ()) -> str:
    lines = [HEAD.format(t=t), "started units that wait:"]
    lines += [f"  {w.apartment}: {w.unit}: {w.waits_on}" for w in waits[:len(waits) - queued]]
    if queued:
        lines.append("queued behind them:")
        lines += [f"  {w.apartment}: {w.unit}: {w.waits_on}" for w in waits[-queued:]]
    lines += [f"wait-for cycle: {c}" for c in cycles]
    return "\n".join(lines)


def event_wait(event: Any, where: str) -> str:
    return (f"a non-COM await on Event.wait() of {event!r} (in {where}); "
            "innermost: asyncio.Future")


def test_names_are_exported() -> None:
    assert issubclass(Deadlock, RuntimeError)
    assert Wait._fields == ("apartment", "unit", "waits_on")
    assert Wait is not comsim._core.sta.Wait  # the scheduler's own is another class


def test_server_awaiting_an_event_nobody_sets(caplog: pytest.LogCaptureFixture) -> None:
    # R2: B's method blocks B by a non-COM await; A's unit waits in a COM wait on its call
    exc = raises_deadlock(d.hang_scenario)
    waits = [
        Wait("B", "IHang.Hang (call #1 from 'A')", event_wait(d.SEEN["event"], "Hanger.Hang")),
        Wait("A", "run call_hang", "a COM wait on call #1 IHang.Hang to 'B'"),
        Wait(None, "hang_scenario", "a non-COM await on Apartment.run of call_hang in 'A'"),
    ]
    assert exc.waits == waits
    assert exc.cycles == []
    assert str(exc) == message(0.0, waits)
    # the remaining tasks were cancelled (the server method too), and nothing was left over
    assert d.SEEN["hang ended"] is True
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(("how", "waits_on"), [
    ("finish", "a COM wait in Finish_Hang on call #1 IHang.Hang to 'B'"),  # R22
    ("wait", "a COM wait in ISynchronize.Wait on the call object of call #1 IHang.Hang "
             "to 'B'"),  # R23
    ("cancel", "a COM wait in the grace period of Cancel on call #1 IHang.Hang to 'B'"),  # R28
])
def test_each_com_wait_is_named(how: str, waits_on: str) -> None:
    # R2: Finish_, ISynchronize.Wait and Cancel's grace are COM waits of A's unit
    exc = raises_deadlock(d.begin_scenario, how)
    waits = [
        Wait("B", "IHang.Hang (call #1 from 'A')", event_wait(d.SEEN["event"], "Hanger.Hang")),
        Wait("A", "run wait_hang", waits_on),
        Wait(None, "begin_scenario", "a non-COM await on Apartment.run of wait_hang in 'A'"),
    ]
    assert exc.waits == waits
    assert str(exc) == message(1.0, waits)  # the virtual second of wait_hang's sleep


def test_co_cancel_call_from_another_apartment_is_named() -> None:
    # R2, R28, R31: C's unit waits out CoCancelCall's grace period on A's call, a COM wait
    exc = raises_deadlock(d.co_cancel_scenario)
    assert exc.waits[:3] == [
        Wait("B", "IHang.Hang (call #1 from 'A')", event_wait(d.SEEN["event"], "Hanger.Hang")),
        Wait("A", "run call_hang_cancellable", "a COM wait on call #1 IHang.Hang to 'B'"),
        Wait("C", "run co_cancel_hang",
             "a COM wait in the grace period of CoCancelCall on call #1 IHang.Hang to 'B'"),
    ]
    assert exc.cycles == []


def test_cancel_from_na_code_on_another_thread_is_named() -> None:
    # R2, R5, R28: NA code entered from C cancels a call that NA code entered from A began: the
    # cancel's step goes to A's thread, and C's unit waits out the grace period, a COM wait
    exc = raises_deadlock(d.na_cancel_scenario)
    assert exc.waits[:2] == [
        Wait("B", "IHang.Hang (call #1 from 'A')", event_wait(d.SEEN["event"], "Hanger.Hang")),
        Wait("C", "run NeutralApartment.run",
             "a COM wait in the grace period of Cancel on call #1 IHang.Hang to 'B'"),
    ]
    assert exc.cycles == []


def test_call_back_into_an_sta_blocked_by_a_non_com_await() -> None:
    # R2 (choice): A's unit waits by non-COM means for what only a later unit of A provides;
    # B's method calls back into A, and that call queues behind A's unit
    exc = raises_deadlock(d.callback_scenario)
    waits = [
        Wait("A", "run begin_then_await_ping",
             event_wait(d.SEEN["event"], "begin_then_await_ping")),
        Wait("B", "IPing.CallBack (call #1 from 'A')", "a COM wait on call #2 IPing.Ping to 'A'"),
        Wait(None, "callback_scenario",
             "a non-COM await on Apartment.run of begin_then_await_ping in 'A'"),
        Wait("A", "IPing.Ping (call #2 from 'B')", "queued behind run begin_then_await_ping"),
    ]
    assert exc.waits == waits
    assert exc.cycles == []  # what A's event waits for is not known: no cycle is claimed
    assert str(exc) == message(0.0, waits, queued=1)


def test_cross_apartment_wait_for_cycle() -> None:
    # R2: A's unit waits on a call to B (a COM wait); B's method waits by non-COM means
    # (Apartment.run) on work only A can run; R16: A's MessagePending holds that run unit
    # while A waits in its call. (A cycle of COM waits alone cannot deadlock: every COM wait
    # lets incoming calls in, nested, and message filters hold only Apartment.run units.)
    exc = raises_deadlock(d.cycle_scenario)
    waits = [
        Wait("A", "run call_relay", "a COM wait on call #1 IRelay.Relay to 'B'"),
        Wait("B", "IRelay.Relay (call #1 from 'A')",
             "a non-COM await on Apartment.run of in_a in 'A', queued there"),
        Wait(None, "cycle_scenario", "a non-COM await on Apartment.run of call_relay in 'A'"),
        Wait("A", "run in_a", "held by the message filter of 'A' (MessagePending: "
                              "PENDINGMSG_WAITNOPROCESS) during run call_relay's wait on "
                              "call #1 IRelay.Relay to 'B'"),
    ]
    assert exc.waits == waits
    assert exc.cycles == [["A", "B", "A"]]
    assert str(exc) == message(0.0, waits, queued=1, cycles=("A -> B -> A",))


def test_creation_held_by_the_main_sta_below_its_call_back() -> None:
    # R33 R16 R2: the main STA A waits in a call to B; a unit of B nested above that call's
    # server creates a class of no threading model, whose unit A's MessagePending holds until
    # A's call ends; the server resumes only once the creator's unit has ended (last in, first
    # out). COM deadlocks so too; the fuzz programs avoid it (tests/fuzz: seed 606085 hung)
    exc = raises_deadlock(d.creation_scenario)
    assert exc.waits[:3] == [
        Wait("A", "run call_back", "a COM wait on call #1 IBack.Back to 'B'"),
        Wait("B", "IBack.Back (call #1 from 'A')",
             "a COM wait on call #2 IGate.Pass to 'MTA', which has ended: it resumes once the "
             "units nested above it end (R2)"),
        Wait("B", "run create", "a COM wait in CoCreateInstance(Legacy), made by a unit of "
                                "'A', queued there"),
    ]
    assert exc.waits[-1] == Wait(
        "A", "run _construct", "held by the message filter of 'A' (MessagePending: "
                               "PENDINGMSG_WAITNOPROCESS) during run call_back's wait on "
                               "call #1 IBack.Back to 'B'")
    assert exc.cycles == [["A", "B", "A"]]


def test_na_code_awaiting_a_unit_of_the_sta_under_it() -> None:
    # R5: NA code runs on its caller's thread, in the caller's unit: the unit of A that entered
    # the NA waits (Apartment.run, a non-COM await, R2) on a unit of A, which queues behind it;
    # the report names A's unit and the wait of its NA code, and the cycle A -> A
    exc = raises_deadlock(d.na_on_its_sta_scenario)
    waits = [
        Wait("A", "run enter_na, in NA code",
             "a non-COM await on Apartment.run of inner in 'A', queued there"),
        Wait(None, "na_on_its_sta_scenario",
             "a non-COM await on Apartment.run of enter_na in 'A'"),
        Wait("A", "run inner", "queued behind run enter_na"),
    ]
    assert exc.waits == waits
    assert exc.cycles == [["A", "A"]]
    assert str(exc) == message(0.0, waits, queued=1, cycles=("A -> A",))


def test_code_in_no_apartment_waiting_forever() -> None:
    exc = raises_deadlock(d.outside_scenario)
    waits = [Wait(None, "outside_scenario", event_wait(d.SEEN["event"], "outside_scenario"))]
    assert exc.waits == waits
    assert str(exc) == message(0.0, waits)


def test_sleep_forever_is_a_deadlock() -> None:
    # a timer at inf never fires: nothing can run again (and the clock does not jump to inf)
    exc = raises_deadlock(d.forever_scenario)
    waits = [Wait(None, "forever_scenario",
                  "a non-COM await on sleep_forever() (in forever_scenario); "
                  "innermost: asyncio.Future")]
    assert exc.waits == waits
    assert str(exc) == message(0.0, waits)


def test_explore_raises_the_deadlock() -> None:
    runs = []

    async def scenario(rt: comsim.Runtime) -> None:
        runs.append(1)
        await anyio.Event().wait()

    with pytest.raises(Deadlock) as info:
        comsim.testing.explore(scenario, seeds=[0])
    # the run, shrink's check that its schedule still deadlocks, the replay that raises: each
    # a deadlock found in its grace period, none a hang (no wall-clock time is asserted)
    assert len(runs) <= 3
    assert [w.unit for w in info.value.waits] == [
        "test_explore_raises_the_deadlock.<locals>.scenario"]


# ------------------------------------------------------------------ no deadlock
def test_slow_in_virtual_time_is_no_deadlock() -> None:
    async def main() -> float:
        async with comsim.Runtime(deterministic=True, seed=0) as rt:
            p = await pair(rt, d.Pinger, d.IPing, server="B", client="A")

            async def slow() -> None:
                await anyio.sleep(1e6)

            await p.server.run(slow)
        return asyncio.get_running_loop().time()

    start = time.monotonic()
    assert comsim.testing.run(main) == 1e6
    assert time.monotonic() - start < 10.0  # its grace period is 0.1 s: no hang, even loaded


def test_threaded_runtime_is_not_affected() -> None:
    # the threaded runtime's apartments are real threads: a caller on the virtual-time loop
    # waits for their replies for real, however long (here 0.3 s, above the 0.1 s grace)
    class ISlow(comsim.Interface):
        async def Slow(self) -> str: ...

    class Slow(comsim.CoClass, ISlow):
        async def Slow(self) -> str:
            await anyio.sleep(0.3)  # real time: a threaded apartment's loop
            return "done"

    async def main() -> str:
        async with comsim.Runtime() as rt:
            p = await pair(rt, Slow, ISlow)

            async def call(proxy: Any) -> str:
                return str(await proxy.Slow())

            return await p.client.run(call, p.proxy)

    assert comsim.testing.run(main) == "done"


def test_threads_at_work_for_the_loop_are_no_deadlock() -> None:
    # executor jobs (asyncio.to_thread), anyio worker threads, and a plain thread that posts
    # within the grace: the loop waits for them for real
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        got: list[str] = []
        await asyncio.to_thread(time.sleep, 0.2)
        got.append("to_thread")
        await anyio.to_thread.run_sync(time.sleep, 0.2)
        got.append("anyio worker")
        fut = loop.create_future()
        threading.Thread(target=loop.call_soon_threadsafe,
                         args=(fut.set_result, "posted")).start()
        got.append(await fut)
        return got

    assert comsim.testing.run(main) == ["to_thread", "anyio worker", "posted"]


def test_the_default_executor_is_joined_for_real() -> None:
    # asyncio (3.12+) joins the default executor's threads under a 300 s time-out as the run
    # ends; in virtual time that would pass at once (a RuntimeWarning, threads left unjoined)
    async def main() -> str:
        await asyncio.to_thread(time.sleep, 0.01)
        asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.2)  # still at work
        return "done"

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert comsim.testing.run(main) == "done"


PLUGIN_TEST = '''
import anyio, pytest

@pytest.mark.comsim
async def test_hangs(comsim_runtime):
    await anyio.Event().wait()
'''


def test_the_plugin_reports_a_deadlock(pytester: pytest.Pytester) -> None:
    # the plugin runs a test on the virtual-time loop: the deadlock fails it, with the report
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E*comsim.testing.Deadlock: deadlock at virtual time 0.0*",
                                 "*None: test_hangs: a non-COM await on Event.wait()*"])


pytest_plugins = ["pytester"]
