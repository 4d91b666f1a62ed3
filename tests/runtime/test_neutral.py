"""The neutral apartment, ``rt.nta`` (R5), on both runtimes: no thread of its own; code enters
it on the caller's loop and simulated thread; MTA rules; waits take the kind of the thread
under it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import pytest

import comsim
from comsim import ApartmentType, hresult

from ..helpers import Calc, ICalc, hresult_of


class INa(comsim.Interface):
    async def Where(self) -> dict[str, Any]: ...
    async def Grow(self, items: list[int]) -> list[int]: ...
    async def Fail(self, how: str) -> None: ...
    async def Hold(self, seconds: float, started: Any) -> str: ...
    async def Twice(self, calc: Any) -> int: ...


class Neutral(comsim.CoClass, INa):
    threading_model = "Neutral"

    async def Where(self) -> dict[str, Any]:
        apt = comsim.current_apartment()
        return {"apartment": apt.name if apt is not None else None,
                "type": comsim.CoGetApartmentType(), "thread": comsim.current_thread_id(),
                "os_thread": threading.get_ident(),
                "causality": comsim.current_causality_id()}

    async def Grow(self, items: list[int]) -> list[int]:
        items.append(99)  # a copy (R11): the caller does not see it
        return items

    async def Fail(self, how: str) -> None:
        if how == "com":
            raise comsim.COMError(hresult.CO_E_OBJNOTREG, "chosen")
        raise ValueError("plain")

    async def Hold(self, seconds: float, started: Any) -> str:
        started.Signal()
        await anyio.sleep(seconds)  # a non-COM wait, inside the NA
        return "held"

    async def Twice(self, calc: Any) -> int:
        return int(await calc.Add(2, 3)) * 2  # an outgoing call from NA code


async def make_in(apt: comsim.Apartment) -> Any:
    """A proxy, bound to ``apt``, to a new NA object (R33: "Neutral" goes to the NA)."""

    async def create() -> Any:
        return await comsim.CoCreateInstance(Neutral, INa)

    return await apt.run(create)


def here() -> dict[str, Any]:
    apt = comsim.current_apartment()
    return {"apartment": apt.name if apt is not None else None,
            "thread": comsim.current_thread_id(), "os_thread": threading.get_ident()}


@pytest.mark.asyncio
async def test_the_neutral_apartment(rt: comsim.Runtime) -> None:
    # R5: one per runtime, named NA, of type NA, made on demand, with no thread of its own
    nta = rt.nta
    assert nta is rt.nta
    assert nta.name == "NA" and nta.type is ApartmentType.NA
    assert nta.alive
    assert not nta.type.is_sta
    assert nta not in rt.apartments  # no thread to join

    def inside() -> tuple[Any, ApartmentType]:
        return comsim.current_apartment(), comsim.CoGetApartmentType()

    assert await nta.run(inside) == (nta, ApartmentType.NA)
    with pytest.raises(comsim.COMError) as info:
        await nta.shutdown()
    assert info.value.hresult == hresult.E_FAIL  # it ends only with the runtime


@pytest.mark.asyncio
async def test_the_neutral_apartment_ends_with_the_runtime() -> None:
    # R5: the NA ends with its runtime; nothing runs in it afterwards
    det = isinstance(asyncio.get_running_loop(), comsim.testing.VirtualTimeLoop)
    async with comsim.Runtime(deterministic=det, seed=0 if det else None) as rt:
        nta = rt.nta
    assert not nta.alive
    with pytest.raises(comsim.COMError) as info:
        await nta.run(here)
    assert info.value.hresult == hresult.RPC_E_DISCONNECTED
    with pytest.raises(RuntimeError):
        comsim.Runtime().nta  # noqa: B018 - not entered


@pytest.mark.parametrize("caller", ["STA", "MTA", "no apartment"])
@pytest.mark.asyncio
async def test_run_keeps_the_callers_thread(rt: comsim.Runtime, caller: str) -> None:
    # R5: rt.nta.run runs on the caller's own loop and simulated thread, NA current, and the
    # caller's apartment is current again afterwards
    sta = await rt.create_sta("s")

    async def enter() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], bool]:
        loop = asyncio.get_running_loop()

        async def inside() -> tuple[dict[str, Any], bool]:
            return here(), asyncio.get_running_loop() is loop

        before = here()
        inner, same_loop = await rt.nta.run(inside)
        return before, inner, here(), same_loop

    if caller == "STA":
        before, inner, after, same_loop = await sta.run(enter)
    elif caller == "MTA":
        before, inner, after, same_loop = await rt.mta.run(enter)
    else:
        before, inner, after, same_loop = await enter()
    assert same_loop
    assert inner["apartment"] == "NA"
    assert inner["thread"] == before["thread"] and inner["os_thread"] == before["os_thread"]
    assert after == before
    assert before["apartment"] == {"STA": "s", "MTA": "MTA", "no apartment": None}[caller]


@pytest.mark.asyncio
async def test_call_into_the_na_runs_on_the_callers_thread(rt: comsim.Runtime) -> None:
    # R5: a call through a proxy to an NA object runs on the caller's thread, NA current;
    # R11: arguments are copied; R15: it carries a causality id
    sta = await rt.create_sta("s")
    p = await make_in(sta)

    async def use() -> tuple[dict[str, Any], dict[str, Any], list[int], list[int]]:
        items = [1]
        grown = await p.Grow(items)
        return here(), await p.Where(), items, grown

    me, there, items, grown = await sta.run(use)
    assert isinstance(p, comsim.Proxy)
    assert there["apartment"] == "NA" and there["type"] is ApartmentType.NA
    assert there["thread"] == me["thread"] == sta.thread_id
    assert there["os_thread"] == me["os_thread"]
    assert there["causality"] is not None
    assert items == [1] and grown == [1, 99]


@pytest.mark.asyncio
async def test_na_call_failures_become_hresults(rt: comsim.Runtime) -> None:
    # R5 (R14): COMError(hr) gives hr; anything else RPC_E_SERVERFAULT, the original chained
    sta = await rt.create_sta("s")
    p = await make_in(sta)

    async def fail(how: str) -> comsim.COMError:
        try:
            await p.Fail(how)
        except comsim.COMError as exc:
            return exc
        raise AssertionError("no error")

    exc = await sta.run(fail, "com")
    assert exc.hresult == hresult.CO_E_OBJNOTREG
    exc = await sta.run(fail, "plain")
    assert exc.hresult == hresult.RPC_E_SERVERFAULT
    assert isinstance(exc.__cause__, ValueError)


@pytest.mark.asyncio
async def test_na_call_from_an_incoming_call_keeps_its_causality(rt: comsim.Runtime) -> None:
    # R5 (R15): the NA call made while handling an incoming call carries its causality id
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")

    class Relay(comsim.CoClass, IPass):
        async def Pass(self, target: Any) -> tuple[int | None, int | None]:
            there = await target.Where()
            return comsim.current_causality_id(), there["causality"]

    async def serve() -> comsim.MarshalStream:
        return comsim.marshal_interface(Relay(), IPass)

    stream = await srv.run(serve)
    p_na = await make_in(cli)

    async def call() -> tuple[int | None, int | None]:
        relay = comsim.unmarshal_interface(stream)
        return tuple(await relay.Pass(p_na))  # type: ignore[return-value]

    mine, theirs = await cli.run(call)
    assert mine is not None and mine == theirs


class IPass(comsim.Interface):
    async def Pass(self, target: Any) -> tuple[int | None, int | None]: ...


@pytest.mark.deterministic_only
@pytest.mark.asyncio
async def test_entering_the_na_is_not_a_com_wait(rt: comsim.Runtime) -> None:
    # R5: an STA whose thread is in the NA starts no other unit, even across a non-COM await
    sta = await rt.create_sta("s")
    p = await make_in(sta)
    log: list[str] = []
    inside = comsim.ManualResetEvent()

    async def hold() -> None:
        log.append(await p.Hold(5.0, inside))

    async def probe() -> None:
        log.append("probe")

    async with anyio.create_task_group() as tg:
        tg.start_soon(sta.run, hold)
        await inside.Wait(0, comsim.INFINITE)
        await sta.run(probe)  # queued: the STA's thread is busy in the NA
    assert log == ["held", "probe"]


@pytest.mark.asyncio
async def test_message_filters_in_the_na(rt: comsim.Runtime) -> None:
    # R5 (R16): registering a message filter in the NA fails; a call into the NA consults no
    # filter (the caller's HandleInComingCall is not asked)
    sta = await rt.create_sta("s")
    asked: list[str] = []

    class Filter(comsim.IMessageFilter):
        def HandleInComingCall(self, *args: Any) -> int:
            asked.append("incoming")
            return comsim.SERVERCALL_REJECTED

    def register() -> int:
        try:
            comsim.CoRegisterMessageFilter(Filter())
        except comsim.COMError as exc:
            return exc.hresult
        return 0

    assert await rt.nta.run(register) == hresult.CO_E_NOT_SUPPORTED
    assert await sta.run(register) == 0
    p = await make_in(sta)

    async def call() -> str:
        return str((await p.Where())["apartment"])

    assert await sta.run(call) == "NA"
    assert asked == []


@pytest.mark.asyncio
async def test_a_wait_in_the_na_on_an_sta_is_a_com_wait_of_that_sta(rt: comsim.Runtime) -> None:
    # R5: a wait made by NA code on an STA's thread is a COM wait of that STA: a queued unit
    # starts nested, on the same thread
    sta = await rt.create_sta("s")
    log: list[str] = []
    inside = comsim.ManualResetEvent()
    done = comsim.ManualResetEvent()

    async def in_na() -> int:
        inside.Signal()
        hr_ = await done.Wait(0, comsim.INFINITE)  # COM wait of "s"
        log.append("na wait ended")
        return hr_

    async def probe() -> int:
        log.append("probe")
        done.Signal()
        return comsim.current_thread_id()

    async with anyio.create_task_group() as tg:
        result: dict[str, Any] = {}

        async def enter() -> None:
            result["hr"] = await sta.run(rt.nta.run, in_na)

        tg.start_soon(enter)
        await inside.Wait(0, comsim.INFINITE)
        probe_thread = await sta.run(probe)
    assert result["hr"] == hresult.S_OK
    assert probe_thread == sta.thread_id
    assert log == ["probe", "na wait ended"]


@pytest.mark.asyncio
async def test_outgoing_call_from_na_on_an_sta_consults_its_message_pending(
        rt: comsim.Runtime) -> None:
    # R5 (R16, R12): NA code on an STA's thread calls out through a proxy bound to the NA; a
    # unit arriving meanwhile asks that STA's MessagePending; the STA's own proxy is refused
    # in the NA (RPC_E_WRONG_THREAD)
    srv = await rt.create_sta("srv")
    sta = await rt.create_sta("s")
    pending: list[int] = []
    gate = comsim.ManualResetEvent()

    class Filter(comsim.IMessageFilter):
        def MessagePending(self, callee_thread: int, tick_count: int,
                           pending_type: int) -> int:
            pending.append(pending_type)
            return comsim.PENDINGMSG_WAITDEFPROCESS

    class Waiter(comsim.CoClass, ICalc):
        async def Add(self, a: int, b: int) -> int:
            await gate.Wait(0, comsim.INFINITE)
            return a + b

    async def serve() -> int:
        return rt.git.RegisterInterfaceInGlobal(Waiter(), ICalc)

    cookie = await srv.run(serve)
    calling = comsim.ManualResetEvent()

    async def in_na() -> tuple[int, int]:
        calc = rt.git.GetInterfaceFromGlobal(cookie, ICalc)  # bound to the NA
        calling.Signal()
        return await calc.Add(1, 2), comsim.current_thread_id()

    async def unit() -> tuple[tuple[int, int], int]:
        comsim.CoRegisterMessageFilter(Filter())
        own = rt.git.GetInterfaceFromGlobal(cookie, ICalc)  # bound to "s"

        async def misuse() -> int:
            return await hresult_of(own.Add(0, 0))

        return await rt.nta.run(in_na), await rt.nta.run(misuse)

    async def probe() -> None:
        gate.Signal()

    async with anyio.create_task_group() as tg:
        result: dict[str, Any] = {}

        async def go() -> None:
            result["out"] = await sta.run(unit)

        tg.start_soon(go)
        await calling.Wait(0, comsim.INFINITE)
        await sta.run(probe)
    (value, tid), misuse_hr = result["out"]
    assert value == 3 and tid == sta.thread_id
    assert pending == [comsim.PENDINGTYPE_TOPLEVEL]
    assert misuse_hr == hresult.RPC_E_WRONG_THREAD


@pytest.mark.parametrize("caller", ["MTA", "no apartment"])
@pytest.mark.asyncio
async def test_a_wait_in_the_na_elsewhere_just_waits(rt: comsim.Runtime, caller: str) -> None:
    # R5: on the MTA or in no apartment a wait by NA code just waits; outgoing calls from it
    # still work (their replies come to the thread under the NA)
    sta = await rt.create_sta("s")

    async def serve() -> int:
        return rt.git.RegisterInterfaceInGlobal(Calc(), ICalc)

    cookie = await sta.run(serve)

    async def in_na() -> tuple[int, int, int]:
        ev = comsim.ManualResetEvent()
        timed_out = await ev.Wait(0, 10)
        calc = rt.git.GetInterfaceFromGlobal(cookie, ICalc)
        return timed_out, await calc.Add(2, 2), comsim.current_thread_id()

    async def enter() -> tuple[tuple[int, int, int], int]:
        return await rt.nta.run(in_na), comsim.current_thread_id()

    if caller == "MTA":
        (timed_out, value, tid), mine = await rt.mta.run(enter)
    else:
        (timed_out, value, tid), mine = await enter()
    assert timed_out == hresult.RPC_S_CALLPENDING
    assert value == 4
    assert tid == mine


@pytest.mark.asyncio
async def test_na_proxy_usable_from_na_code_on_any_thread(rt: comsim.Runtime) -> None:
    # R5 (R12): a proxy bound to the NA works from NA code entered on any thread
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def serve() -> int:
        return rt.git.RegisterInterfaceInGlobal(Calc(), ICalc)

    cookie = await a.run(serve)
    box: dict[str, Any] = {}

    def bind() -> None:
        box["calc"] = rt.git.GetInterfaceFromGlobal(cookie, ICalc)

    await rt.nta.run(bind)

    async def use() -> int:
        return int(await box["calc"].Add(1, 1))

    assert await b.run(rt.nta.run, use) == 2
    assert await rt.mta.run(rt.nta.run, use) == 2
    assert await rt.nta.run(use) == 2
    with pytest.raises(comsim.COMError) as info:
        await b.run(use)  # not from "b" itself
    assert info.value.hresult == hresult.RPC_E_WRONG_THREAD


AsyncICalc = comsim.async_interface(ICalc)


class _Outer:
    """An ``outer`` for CreateCall that notes where each ``Signal()`` ran (R24)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, int]] = []

    def Signal(self) -> None:
        apt = comsim.current_apartment()
        self.seen.append((apt.name if apt is not None else None, comsim.current_thread_id()))


@pytest.mark.parametrize("under", ["STA", "MTA", "no apartment"])
@pytest.mark.asyncio
async def test_outer_signal_of_a_call_from_na_code_runs_in_the_na(rt: comsim.Runtime,
                                                                    under: str) -> None:
    # R24 with R5: outer.Signal() runs in the apartment of the call's client -- for a call
    # made by NA code, the NA, on the thread under it (found by the fuzz suite)
    a = await rt.create_sta("a")

    async def serve() -> int:
        return rt.git.RegisterInterfaceInGlobal(Calc(), ICalc)

    cookie = await a.run(serve)
    outer = _Outer()

    async def in_na() -> tuple[int, int]:
        calc = rt.git.GetInterfaceFromGlobal(cookie, ICalc)
        call: Any = calc.QueryInterface(comsim.ICallFactory).CreateCall(AsyncICalc, outer)
        call.Begin_Add(1, 2)
        return int(await call.Finish_Add()), comsim.current_thread_id()

    if under == "STA":
        b = await rt.create_sta("b")
        total, thread = await b.run(rt.nta.run, in_na)
    elif under == "MTA":
        total, thread = await rt.mta.run(rt.nta.run, in_na)
    else:
        total, thread = await rt.nta.run(in_na)
    assert total == 3
    assert outer.seen == [("NA", thread)]


@pytest.mark.asyncio
async def test_na_object_calls_out(rt: comsim.Runtime) -> None:
    # R5 (R11): an object reference passed into the NA becomes a proxy bound to the NA
    sta = await rt.create_sta("s")
    p = await make_in(sta)

    async def use() -> int:
        return int(await p.Twice(Calc()))

    assert await sta.run(use) == 10


AsyncINa = comsim.async_interface(INa)


@pytest.mark.asyncio
async def test_begin_on_an_na_proxy(rt: comsim.Runtime) -> None:
    # R5 (choice): Begin_ starts the method at once as a task of the caller, NA current, on
    # the caller's thread; Finish_ gives its result (R22)
    sta = await rt.create_sta("s")
    p = await make_in(sta)

    async def use() -> tuple[dict[str, Any], int]:
        factory = p.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(AsyncINa)
        assert call.Begin_Where() == hresult.S_OK
        return await call.Finish_Where(), comsim.current_thread_id()

    there, mine = await sta.run(use)
    assert there["apartment"] == "NA" and there["thread"] == mine


@pytest.mark.asyncio
async def test_cancel_a_begun_na_call(rt: comsim.Runtime) -> None:
    # R5 (R28, R30): a cancel interrupts an interrupt-policy NA method begun with Begin_
    sta = await rt.create_sta("s")
    p = await make_in(sta)

    async def use() -> tuple[int, int]:
        factory = p.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(AsyncINa)
        started = comsim.ManualResetEvent()
        call.Begin_Hold(30.0, started)
        await started.Wait(0, comsim.INFINITE)  # the begun task runs (a task of ours)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        hr_cancel = await cancel.Cancel(5)
        try:
            await call.Finish_Hold()
        except comsim.COMError as exc:
            return hr_cancel, exc.hresult
        return hr_cancel, 0

    assert await sta.run(use) == (hresult.S_OK, hresult.RPC_E_CALL_CANCELED)


class Lingering(comsim.CoClass, INa):
    """An NA object whose Hold says when it ends, however it ends."""

    threading_model = "Neutral"
    ended: list[str] = []

    async def Hold(self, seconds: float, started: Any) -> str:
        started.Signal()
        try:
            await anyio.sleep(seconds)
        finally:
            Lingering.ended.append("ended")
        return "held"


@pytest.mark.parametrize("where", ["STA", "MTA"])
@pytest.mark.asyncio
async def test_a_begun_na_call_ends_with_the_callers_apartment(where: str) -> None:
    # R5 (choice), R18, R25: the task Begin_ starts on an NA proxy is a task of the caller's
    # apartment; when the unit released its call object without Finish_ and the apartment
    # ends (the STA's shutdown; the MTA's, with the runtime), the task is cancelled and waited
    # for, not left pending on the loop (found by the fuzz suite, tests/fuzz, seed 504 on the
    # deterministic runtime)
    Lingering.ended = []
    det = isinstance(asyncio.get_running_loop(), comsim.testing.VirtualTimeLoop)
    started = comsim.ManualResetEvent()

    async def unit() -> None:
        p = await comsim.CoCreateInstance(Lingering, INa)
        factory = p.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(AsyncINa)
        factory.Release()
        call.Begin_Hold(3600.0, started)
        call.Release()  # R25: the method runs on, its reply will be dropped

    async with comsim.Runtime(deterministic=det, seed=0 if det else None) as rt:
        apt = await rt.create_sta("s") if where == "STA" else rt.mta
        await apt.run(unit)
        await started.Wait(0, comsim.INFINITE)
        assert Lingering.ended == []
        if where == "STA":
            await apt.shutdown()
            assert Lingering.ended == ["ended"]
    assert Lingering.ended == ["ended"]
    me = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not me and not t.done()] == []
