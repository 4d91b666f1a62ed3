"""Apartments: where objects live, how an STA runs its units, the MTA, apartment types.

Rules R1-R4 of COM-RULES.md (R5, the neutral apartment: test_neutral.py).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import comsim
import comsim.testing
from comsim import ApartmentType, hresult

from ..helpers import IPing

INFINITE = comsim.INFINITE


# --------------------------------------------------------------------------- interfaces
class IWhere(comsim.Interface):
    async def Home(self) -> str: ...


class Here(comsim.CoClass, IWhere):
    """Records where it was constructed and where its methods run."""

    def __init__(self) -> None:
        super().__init__()
        apt = comsim.current_apartment()
        assert apt is not None
        self.born_in = apt.name

    async def Home(self) -> str:
        apt = comsim.current_apartment()
        return apt.name if apt is not None else "<none>"


class IGate(comsim.Interface):
    async def Block(self) -> str: ...
    async def Quick(self) -> str: ...


class Gate(comsim.CoClass, IGate):
    """``Block`` keeps its apartment busy with a NON-COM await (an asyncio future of the
    apartment's own loop, with a time-out as a safety net); ``Quick`` returns at once."""

    def __init__(self, log: list[str], started: comsim.ManualResetEvent,
                 box: dict[str, Any], timeout: float) -> None:
        super().__init__()
        self.log = log
        self.started = started
        self.box = box
        self.timeout = timeout

    async def Block(self) -> str:
        self.log.append("block-start")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.box["release"] = (loop, fut)
        self.started.Signal()
        with anyio.move_on_after(self.timeout):
            await fut  # not a COM wait: the apartment's thread is busy
        self.log.append("block-end")
        return "block"

    async def Quick(self) -> str:
        self.log.append("quick")
        return "quick"


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def release_block(box: dict[str, Any]) -> None:
    """Let ``Gate.Block`` go on, from any thread (posted to the Block's own loop)."""
    loop, fut = box["release"]
    loop.call_soon_threadsafe(_settle, fut)


class Pinger(comsim.CoClass, IPing):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def Ping(self) -> str:
        apt = comsim.current_apartment()
        assert apt is not None
        self.log.append(f"ping in {apt.name}")
        return apt.name


class IRelay(comsim.Interface):
    async def Relay(self, target: Any) -> tuple[bool, str, str]: ...


class Relay(comsim.CoClass, IRelay):
    async def Relay(self, target: Any) -> tuple[bool, str, str]:
        apt = comsim.current_apartment()
        assert apt is not None
        answer = await target.Ping()  # back into the caller's STA, which waits in our call
        return isinstance(target, comsim.Proxy), answer, apt.name


class IMeet(comsim.Interface):
    async def Meet(self, mine: Any, other: Any) -> int: ...


class Meeter(comsim.CoClass, IMeet):
    async def Meet(self, mine: Any, other: Any) -> int:
        mine.Signal()
        # 5 s: free on the deterministic runtime; on the threaded one only spent on failure
        return await other.Wait(0, 5000)


# --------------------------------------------------------------------------- R1
@pytest.mark.asyncio
async def test_coclass_constructed_outside_any_apartment_fails(rt: comsim.Runtime) -> None:
    # R1, R4: constructing an object needs an apartment
    with pytest.raises(comsim.COMError) as exc:
        Here()
    assert exc.value.hresult == hresult.CO_E_NOTINITIALIZED


@pytest.mark.asyncio
async def test_object_lives_where_constructed_and_is_reached_through_proxies(
    rt: comsim.Runtime,
) -> None:
    # R1: the constructing apartment is the object's home; elsewhere a proxy reaches it
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def make() -> tuple[Here, comsim.MarshalStream]:
        obj = Here()
        return obj, comsim.marshal_interface(obj, IWhere, flags=comsim.MSHLFLAGS.TABLESTRONG)

    obj, stream = await b.run(make)
    assert obj.born_in == "b"

    async def use() -> tuple[Any, str]:
        p = comsim.unmarshal_interface(stream)
        return p, await p.Home()

    p, home = await a.run(use)
    assert isinstance(p, comsim.Proxy)
    assert not isinstance(p, Here)
    assert p is not obj
    assert home == "b"  # the method ran in the object's apartment, not the caller's

    async def at_home() -> Any:
        return comsim.unmarshal_interface(stream)

    assert await b.run(at_home) is obj  # at home: the object itself

    # an object constructed in the MTA lives in the MTA
    mobj, mstream = await rt.mta.run(make)
    assert mobj.born_in == rt.mta.name

    async def use_mta() -> tuple[Any, str]:
        q = comsim.unmarshal_interface(mstream)
        return q, await q.Home()

    q, mhome = await a.run(use_mta)
    assert isinstance(q, comsim.Proxy)
    assert mhome == rt.mta.name


# --------------------------------------------------------------------------- R2
@pytest.mark.asyncio
async def test_sta_keeps_second_call_waiting_during_non_com_await(
    rt: comsim.Runtime, kind: str
) -> None:
    # R2: a running unit keeps the STA busy across a non-COM await; the next call waits
    server = await rt.create_sta("server")
    c1 = await rt.create_sta("c1")
    c2 = await rt.create_sta("c2")
    det = kind == "deterministic"
    log: list[str] = []
    started = comsim.ManualResetEvent()
    box: dict[str, Any] = {}

    async def make() -> tuple[comsim.MarshalStream, comsim.MarshalStream]:
        g = Gate(log, started, box, timeout=5.0 if det else 10.0)
        return comsim.marshal_interface(g, IGate), comsim.marshal_interface(g, IGate)

    s1, s2 = await server.run(make)
    results: dict[str, str] = {}

    async def first() -> None:
        results["block"] = await comsim.unmarshal_interface(s1).Block()

    async def second() -> None:
        p = comsim.unmarshal_interface(s2)
        await started.Wait(0, INFINITE)  # Block runs and awaits by non-COM means

        async def call() -> None:
            results["quick"] = await p.Quick()

        with comsim.testing.capture_trace() as events:
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await anyio.lowlevel.checkpoint()  # `call` has run up to its COM wait
                assert events.events("call.sent", method="Quick")
                if not det:
                    # posted to the server's loop after the request: the server takes the
                    # request in (and must queue it) before Block can go on
                    release_block(box)
                # deterministic: Block's (virtual) time-out ends it, long after the request
                # was delivered

    async with anyio.create_task_group() as tg:
        tg.start_soon(c1.run, first)
        tg.start_soon(c2.run, second)

    assert results == {"block": "block", "quick": "quick"}
    assert log == ["block-start", "block-end", "quick"]


@pytest.mark.asyncio
async def test_reentrant_callback_into_waiting_sta(rt: comsim.Runtime) -> None:
    # R2: A calls B; B's method calls back into A, which waits in a COM wait: no deadlock
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    log: list[str] = []

    async def make_relay() -> comsim.MarshalStream:
        return comsim.marshal_interface(Relay(), IRelay)

    stream = await b.run(make_relay)

    async def use() -> tuple[bool, str, str]:
        relay = comsim.unmarshal_interface(stream)
        pinger = Pinger(log)  # lives in A; goes to B as a proxy
        log.append("a calls b")
        result = await relay.Relay(pinger)
        log.append("a resumes")
        return result

    is_proxy, pinged_in, relayed_in = await a.run(use)
    assert is_proxy is True
    assert pinged_in == "a"  # the callback ran in A, nested in A's waiting unit
    assert relayed_in == "b"
    assert log == ["a calls b", "ping in a", "a resumes"]


@pytest.mark.asyncio
async def test_nested_units_end_last_in_first_out(rt: comsim.Runtime) -> None:
    # R2: a unit whose COM wait has ended resumes only after every unit nested above it ended,
    # also while the unit above is itself in a COM wait
    a = await rt.create_sta("a")
    log: list[str] = []
    ev1 = comsim.ManualResetEvent()
    ev2 = comsim.ManualResetEvent()
    u1_waiting = comsim.ManualResetEvent()
    u2_waiting = comsim.ManualResetEvent()

    async def u1() -> None:
        log.append("u1 waits")
        u1_waiting.Signal()  # U1 goes straight on into its wait: the STA takes in U2 after
        assert await ev1.Wait(0, INFINITE) == hresult.S_OK  # a COM wait: U2 may start
        log.append("u1 resumes")

    async def u2() -> None:
        log.append("u2 starts")
        ev1.Signal()  # U1's wait is over, but U2 is on top
        for _ in range(10):  # keep the thread, non-COM, while U1's wake-up is taken in
            await anyio.lowlevel.checkpoint()
        log.append("u2 waits")
        u2_waiting.Signal()
        assert await ev2.Wait(0, INFINITE) == hresult.S_OK  # a COM wait: U3 may start,
        log.append("u2 ends")  # U1 may not

    async def u3() -> None:
        log.append("u3 runs")
        ev2.Signal()
        for _ in range(10):
            await anyio.lowlevel.checkpoint()
        log.append("u3 ends")

    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run, u1)
        await u1_waiting.Wait(0, INFINITE)
        tg.start_soon(a.run, u2)  # starts nested once U1 is in its COM wait
        await u2_waiting.Wait(0, INFINITE)
        tg.start_soon(a.run, u3)

    assert log == ["u1 waits", "u2 starts", "u2 waits", "u3 runs", "u3 ends", "u2 ends",
                   "u1 resumes"]


@pytest.mark.asyncio
async def test_run_from_inside_the_same_apartment_runs_directly(rt: comsim.Runtime) -> None:
    # R2, R11: Apartment.run inside its own apartment runs the function at once, in the same
    # task (queued as a unit it would deadlock behind the running one), by reference
    a = await rt.create_sta("a")

    async def inner(box: list[Any]) -> list[Any]:
        box.append(asyncio.current_task())
        box.append(comsim.current_apartment())
        return box

    async def outer() -> tuple[Any, list[Any], list[Any]]:
        box: list[Any] = []
        result = await a.run(inner, box)
        return asyncio.current_task(), box, result

    task, box, result = await a.run(outer)
    assert result is box
    assert box == [task, a]

    # the same in the MTA
    mtask, mbox, mresult = await rt.mta.run(_run_inside, rt.mta, inner)
    assert mresult is mbox
    assert mbox == [mtask, rt.mta]


async def _run_inside(apt: comsim.Apartment, inner: Any) -> tuple[Any, list[Any], list[Any]]:
    box: list[Any] = []
    result = await apt.run(inner, box)
    return asyncio.current_task(), box, result


@pytest.mark.asyncio
async def test_run_exception_propagates(rt: comsim.Runtime) -> None:
    # R2: an exception of the unit propagates to the caller of run (by reference)
    a = await rt.create_sta("a")
    err = ValueError("boom")

    async def fail() -> None:
        raise err

    with pytest.raises(ValueError) as exc:
        await a.run(fail)
    assert exc.value is err

    async def fail_com() -> None:
        raise comsim.COMError(hresult.E_FAIL, "no")

    with pytest.raises(comsim.COMError) as cexc:
        await a.run(fail_com)
    assert cexc.value.hresult == hresult.E_FAIL

    async def ok() -> int:
        return 7

    assert await a.run(ok) == 7  # the STA is free again


@pytest.mark.asyncio
async def test_cancelling_the_caller_of_run_cancels_the_unit(rt: comsim.Runtime) -> None:
    # R2, R32: cancelling the caller cancels the unit inside the apartment and waits for it
    a = await rt.create_sta("a")
    log: list[str] = []
    started = comsim.ManualResetEvent()

    async def unit() -> None:
        log.append("unit starts")
        started.Signal()
        try:
            await anyio.sleep_forever()
        finally:
            log.append("unit ends")

    async def caller() -> None:
        await a.run(unit)
        log.append("caller returned")  # never

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await started.Wait(0, INFINITE)
            scope.cancel()
    assert scope.cancelled_caught
    # run returned only once the unit had ended
    assert log == ["unit starts", "unit ends"]

    async def ok() -> str:
        return "free"

    assert await a.run(ok) == "free"  # the unit has left the STA


def _cancel_as_the_outcome_arrives(seed: int) -> list[bool]:
    """R32: a unit ends and its outcome travels back (10 ms) when its caller is cancelled, in
    the very turn the outcome arrives; the seed decides whether the outcome is taken in before
    the caller handles its cancel. Checks that run waits for the outcome, neither hanging nor
    returning it, and raises the cancel; gives, per outcome taken in, whether the caller's
    waiter was cancelled by then."""
    from comsim._runtime import jobs

    log: list[str] = []
    seen: list[bool] = []
    settle_waiter = jobs._settle_waiter

    def spy(job: Any, outcome: Any) -> None:
        seen.append(job.waiter.cancelled())
        settle_waiter(job, outcome)

    async def main() -> None:
        async with comsim.Runtime(deterministic=True, seed=seed) as rt:
            a = await rt.create_sta("a")
            rt.set_latency(0.010, source="a")
            loop = asyncio.get_running_loop()
            task: asyncio.Task[None]

            async def unit() -> int:
                log.append("ran")
                # after the outcome is sent: a cancel due when it arrives, timed after it
                loop.call_soon(loop.call_at, 0.010, task.cancel)
                return 5

            async def caller() -> None:
                await a.run(unit)
                log.append("returned")  # never

            task = asyncio.ensure_future(caller())
            with pytest.raises(asyncio.CancelledError):
                await task
            assert loop.time() == 0.010  # it waited for the outcome
            assert log == ["ran"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs, "_settle_waiter", spy)
        comsim.testing.run(main)
    return seen


def test_a_caller_cancelled_while_the_outcome_travels_waits_for_it() -> None:  # R32
    # both orders of the cancel and the outcome's arrival are reached within these seeds
    seen = [_cancel_as_the_outcome_arrives(seed) for seed in range(8)]
    assert all(len(s) == 1 for s in seen)
    assert {s[0] for s in seen} == {True, False}


# --------------------------------------------------------------------------- R3
@pytest.mark.asyncio
async def test_mta_runs_incoming_calls_concurrently(rt: comsim.Runtime, kind: str) -> None:
    # R3: in the MTA nothing is serialized: Quick runs while Block still awaits
    c1 = await rt.create_sta("c1")
    c2 = await rt.create_sta("c2")
    log: list[str] = []
    started = comsim.ManualResetEvent()
    box: dict[str, Any] = {}

    async def make() -> tuple[comsim.MarshalStream, comsim.MarshalStream]:
        g = Gate(log, started, box, timeout=10.0)
        return comsim.marshal_interface(g, IGate), comsim.marshal_interface(g, IGate)

    s1, s2 = await rt.mta.run(make)
    results: dict[str, Any] = {}

    async def first() -> None:
        results["block"] = await comsim.unmarshal_interface(s1).Block()

    async def second() -> None:
        p = comsim.unmarshal_interface(s2)
        await started.Wait(0, INFINITE)
        results["quick"] = await p.Quick()  # completes although Block has not ended
        results["log at quick"] = list(log)
        release_block(box)

    async with anyio.create_task_group() as tg:
        tg.start_soon(c1.run, first)
        tg.start_soon(c2.run, second)

    assert results["log at quick"] == ["block-start", "quick"]
    assert results["block"] == "block" and results["quick"] == "quick"
    assert log == ["block-start", "quick", "block-end"]


@pytest.mark.asyncio
async def test_mta_calls_that_wait_for_each_other_both_complete(rt: comsim.Runtime) -> None:
    # R3: two calls into the MTA, each waiting for the other's event, both complete
    c1 = await rt.create_sta("c1")
    c2 = await rt.create_sta("c2")
    e1 = comsim.ManualResetEvent()
    e2 = comsim.ManualResetEvent()

    async def make() -> tuple[comsim.MarshalStream, comsim.MarshalStream]:
        m = Meeter()
        return comsim.marshal_interface(m, IMeet), comsim.marshal_interface(m, IMeet)

    s1, s2 = await rt.mta.run(make)
    results: dict[str, int] = {}

    async def one() -> None:
        results["one"] = await comsim.unmarshal_interface(s1).Meet(e1, e2)

    async def two() -> None:
        results["two"] = await comsim.unmarshal_interface(s2).Meet(e2, e1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(c1.run, one)
        tg.start_soon(c2.run, two)
    assert results == {"one": hresult.S_OK, "two": hresult.S_OK}


@pytest.mark.asyncio
async def test_mta_run_units_run_concurrently(rt: comsim.Runtime) -> None:
    # R3: Apartment.run units in the MTA are not serialized either
    e1 = comsim.ManualResetEvent()
    e2 = comsim.ManualResetEvent()

    async def meet(mine: comsim.ManualResetEvent, other: comsim.ManualResetEvent) -> int:
        mine.Signal()
        return await other.Wait(0, 5000)

    results: list[int] = []

    async def go(mine: comsim.ManualResetEvent, other: comsim.ManualResetEvent) -> None:
        results.append(await rt.mta.run(meet, mine, other))

    async with anyio.create_task_group() as tg:
        tg.start_soon(go, e1, e2)
        tg.start_soon(go, e2, e1)
    assert results == [hresult.S_OK, hresult.S_OK]


@pytest.mark.asyncio
async def test_one_mta_per_runtime(rt: comsim.Runtime) -> None:
    # R3, R4: one MTA, of type MTA; code running in it sees it
    assert rt.mta is rt.mta
    assert rt.mta.type is ApartmentType.MTA
    await rt.create_sta("a")
    assert [apt for apt in rt.apartments if apt.type is ApartmentType.MTA] == [rt.mta]

    async def where() -> tuple[Any, Any]:
        return comsim.current_apartment(), comsim.CoGetApartmentType()

    assert await rt.mta.run(where) == (rt.mta, ApartmentType.MTA)
    with pytest.raises(comsim.COMError):  # the MTA ends only with its runtime (R18)
        await rt.mta.shutdown()
    assert await rt.mta.run(where) == (rt.mta, ApartmentType.MTA)


@pytest.mark.asyncio
async def test_the_mta_comes_on_first_use_and_goes_with_the_runtime(kind: str) -> None:
    # R3, R18: as in COM, the MTA exists once something enters it; a runtime that never used
    # it has none (no thread, nothing to shut down), and makes none once it has ended
    deterministic = kind == "deterministic"

    async def body() -> None:
        rt = comsim.Runtime(deterministic=deterministic, seed=0 if deterministic else None)
        with pytest.raises(RuntimeError, match="enter the runtime first"):
            rt.mta  # noqa: B018
        async with rt:
            await rt.create_sta("a")
            assert [a.name for a in rt.apartments] == ["a"]
        with pytest.raises(RuntimeError, match="makes none any more"):
            rt.mta  # noqa: B018
        async with comsim.Runtime(deterministic=deterministic,
                                  seed=0 if deterministic else None) as used:
            mta = used.mta
            assert [a.name for a in used.apartments] == ["MTA"] and used.mta is mta
        assert used.mta is mta and not mta.alive  # it went with its runtime (R18)

    await body()


@pytest.mark.asyncio
async def test_two_threads_asking_for_the_first_mta_get_one() -> None:
    # R3: the MTA made on first use is made once, whichever threads ask for it at once
    async with comsim.Runtime() as rt:
        a = await rt.create_sta("a")
        b = await rt.create_sta("b")
        both = threading.Barrier(2, timeout=10)

        def ask() -> Any:
            both.wait()  # the two STA threads ask together
            return rt.mta

        got = await asyncio.gather(a.run(ask), b.run(ask))
        assert got[0] is got[1] is rt.mta
        assert [x.name for x in rt.apartments].count("MTA") == 1
        assert await rt.mta.run(comsim.CoGetApartmentType) is ApartmentType.MTA


@pytest.mark.asyncio
async def test_an_mta_first_asked_for_during_the_exit_runs_and_ends_with_it(kind: str) -> None:
    # R3, R18: an STA's unit cancelled by the runtime's exit asks for the MTA (never used
    # before) in its clean-up: the MTA is made, runs the work, and ends with the runtime
    deterministic = kind == "deterministic"
    log: list[Any] = []
    async with comsim.Runtime(deterministic=deterministic,
                              seed=0 if deterministic else None) as rt:
        a = await rt.create_sta("a")
        started = comsim.ManualResetEvent()

        async def where() -> str:
            return comsim.current_apartment().name

        async def unit() -> None:
            try:
                started.Signal()
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    log.append(await rt.mta.run(where))

        async def caller() -> None:
            with pytest.raises(comsim.COMError) as info:
                await a.run(unit)
            log.append(info.value.hresult)

        task = asyncio.ensure_future(caller())
        await started.Wait(0, comsim.INFINITE)
    await task
    assert log == ["MTA", hresult.RPC_E_DISCONNECTED]
    assert not rt.mta.alive


# --------------------------------------------------------------------------- R4
@pytest.mark.asyncio
async def test_apartment_types_and_current_apartment(rt: comsim.Runtime) -> None:
    # R4: the first STA is the main STA; the type asked from no apartment fails
    with pytest.raises(comsim.COMError) as exc:
        comsim.CoGetApartmentType()
    assert exc.value.hresult == hresult.CO_E_NOTINITIALIZED
    assert comsim.current_apartment() is None

    a = await rt.create_sta("first")
    b = await rt.create_sta("second")
    assert a.type is ApartmentType.MAINSTA
    assert b.type is ApartmentType.STA
    assert (a.name, b.name) == ("first", "second")

    async def where() -> tuple[Any, Any]:
        return comsim.current_apartment(), comsim.CoGetApartmentType()

    assert await a.run(where) == (a, ApartmentType.MAINSTA)
    assert await b.run(where) == (b, ApartmentType.STA)
    assert await rt.mta.run(where) == (rt.mta, ApartmentType.MTA)

    # still nothing outside
    assert comsim.current_apartment() is None
    with pytest.raises(comsim.COMError) as exc2:
        comsim.CoGetApartmentType()
    assert exc2.value.hresult == hresult.CO_E_NOTINITIALIZED

    # only the first STA created is the main STA, also once it has gone
    await a.shutdown()
    c = await rt.create_sta("third")
    assert c.type is ApartmentType.STA


@pytest.mark.asyncio
async def test_apartment_names_are_unique(rt: comsim.Runtime) -> None:
    # R4: names are unique in a runtime
    await rt.create_sta("ui")
    with pytest.raises(ValueError):
        await rt.create_sta("ui")
    other = await rt.create_sta("worker")
    assert other.name == "worker"
    assert [apt.name for apt in rt.apartments].count("ui") == 1


@pytest.mark.asyncio
async def test_run_takes_a_plain_function_too(rt: comsim.Runtime) -> None:  # R2
    sta = await rt.create_sta("plain")

    def where() -> str | None:
        apt = comsim.current_apartment()
        return apt.name if apt is not None else None

    assert await sta.run(where) == "plain"  # a unit of the STA, like an async one

    async def nested() -> str | None:
        return await sta.run(where)  # from inside: runs directly

    assert await sta.run(nested) == "plain"


@pytest.mark.threaded_only
@pytest.mark.asyncio
@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="Linux only")
async def test_runtime_cpu_keeps_apartment_threads_on_one_cpu() -> None:  # R2 R3 (threads)
    import os

    mine = os.sched_getaffinity(0)
    cpu = min(mine)
    async with comsim.Runtime(cpu=cpu) as rt:
        sta = await rt.create_sta("pinned")

        async def affinity() -> set[int]:
            return os.sched_getaffinity(0)

        assert await sta.run(affinity) == {cpu}
        assert await rt.mta.run(affinity) == {cpu}
        assert os.sched_getaffinity(0) == mine  # the caller's own thread is left alone
