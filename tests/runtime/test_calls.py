"""Synchronous calls (R13), server failures (R14), causality ids (R15) and call tracing."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
import structlog

import comsim
from comsim import hresult


class IProbe(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Where(self) -> str: ...
    async def Thread(self) -> str: ...
    async def Cid(self) -> int: ...
    async def Relay(self, other: Any) -> list: ...
    async def RelayAsync(self, other: Any) -> list: ...
    async def Spawned(self, other: Any) -> list: ...
    async def Fail(self, code: int) -> None: ...
    async def Crash(self, text: str) -> None: ...


class Probe(comsim.CoClass, IProbe):
    async def Add(self, a, b):
        return a + b

    async def Where(self):
        apt = comsim.current_apartment()
        assert apt is not None
        return apt.name

    async def Thread(self):
        return threading.current_thread().name

    async def Cid(self):
        return comsim.current_causality_id()

    async def Relay(self, other):
        # a nested synchronous call made while handling this call
        return [comsim.current_causality_id(), await other.Cid()]

    async def RelayAsync(self, other):
        # a nested asynchronous call made while handling this call
        factory = other.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(comsim.async_interface(IProbe))
        factory.Release()
        call.Begin_Cid()
        inner = await call.Finish_Cid()
        call.Release()
        return [comsim.current_causality_id(), inner]

    async def Spawned(self, other):
        seen: list[Any] = []

        async def child() -> None:
            seen.append(comsim.current_causality_id())
            seen.append(await other.Cid())

        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
        return [comsim.current_causality_id(), *seen]

    async def Fail(self, code):
        raise comsim.COMError(code, "the server says no")

    async def Crash(self, text):
        raise ValueError(text)


async def make_probe() -> comsim.MarshalStream:
    return comsim.marshal_interface(Probe(), IProbe, flags=comsim.MSHLFLAGS.TABLESTRONG)


# --------------------------------------------------------------------------- R13
@pytest.mark.asyncio
@pytest.mark.parametrize("route", ["sta->sta", "mta->sta", "sta->mta"])
async def test_call_returns_result_and_runs_in_server_apartment(
        rt: comsim.Runtime, kind: str, route: str) -> None:  # R13
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    client, server = {"sta->sta": (a, b), "mta->sta": (rt.mta, b),
                      "sta->mta": (a, rt.mta)}[route]
    stream = await server.run(make_probe)

    async def probe_server_thread() -> str:
        return threading.current_thread().name

    server_thread = await server.run(probe_server_thread)

    async def use() -> tuple[int, str, str]:
        assert comsim.current_apartment() is client
        p = comsim.unmarshal_interface(stream)
        assert isinstance(p, comsim.Proxy)
        return await p.Add(2, 3), await p.Where(), await p.Thread()

    total, where, thread_name = await client.run(use)
    assert total == 5
    assert where == server.name  # the method ran in the server's apartment
    assert thread_name == server_thread  # the method ran on the server's own thread
    if kind == "threaded":
        assert thread_name != threading.current_thread().name


# --------------------------------------------------------------------------- R14
@pytest.mark.asyncio
@pytest.mark.parametrize("code", [hresult.E_INVALIDARG, hresult.E_FAIL, hresult.CO_E_OBJNOTREG,
                                  0x80040200 - 0x1_0000_0000])  # an application-defined code
async def test_server_comerror_reaches_caller_unchanged(
        rt: comsim.Runtime, code: int) -> None:  # R14
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    stream = await b.run(make_probe)

    async def use() -> None:
        p = comsim.unmarshal_interface(stream)
        await p.Fail(code)

    with pytest.raises(comsim.COMError) as exc:
        await a.run(use)
    assert exc.value.hresult == code


@pytest.mark.asyncio
async def test_server_other_exception_gives_serverfault_chained_and_traced(
        rt: comsim.Runtime) -> None:  # R14
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    stream = await b.run(make_probe)

    async def use() -> None:
        p = comsim.unmarshal_interface(stream)
        await p.Crash("boom 42")

    with comsim.testing.capture_trace() as events:
        with pytest.raises(comsim.COMError) as exc:
            await a.run(use)
    assert exc.value.hresult == hresult.RPC_E_SERVERFAULT
    cause = exc.value.__cause__
    assert isinstance(cause, ValueError)
    assert str(cause) == "boom 42"
    returned = events.events("call.returned", method="Crash")
    assert len(returned) == 1
    assert returned[0]["hresult"] == hresult.RPC_E_SERVERFAULT
    assert returned[0]["exc"] == repr(ValueError("boom 42"))
    completed = events.events("call.completed", method="Crash")
    assert [e["hresult"] for e in completed] == [hresult.RPC_E_SERVERFAULT]

    # the server survives the fault: the next call works
    async def again() -> int:
        return await comsim.unmarshal_interface(stream).Add(1, 1)

    assert await a.run(again) == 2


# --------------------------------------------------------------------------- R15
@pytest.mark.asyncio
async def test_calls_from_run_code_get_fresh_causality_ids(rt: comsim.Runtime) -> None:  # R15
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    stream = await b.run(make_probe)

    async def use() -> list[int]:
        assert comsim.current_causality_id() is None  # not handling an incoming call
        p = comsim.unmarshal_interface(stream)
        return [await p.Cid(), await p.Cid()]

    first = await a.run(use)
    second = await rt.mta.run(use)
    ids = first + second
    assert all(isinstance(i, int) for i in ids)
    assert len(set(ids)) == 4  # unique within the runtime


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["Relay", "RelayAsync"])
async def test_nested_call_carries_the_incoming_causality_id(
        rt: comsim.Runtime, method: str) -> None:  # R15
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    sb = await b.run(make_probe)
    sc = await c.run(make_probe)

    async def use() -> list[int]:
        pb = comsim.unmarshal_interface(sb)
        pc = comsim.unmarshal_interface(sc)
        direct = await pc.Cid()
        outer, inner = await getattr(pb, method)(pc)
        return [direct, outer, inner]

    with comsim.testing.capture_trace() as events:
        direct, outer, inner = await a.run(use)
    assert outer == inner  # the nested call (b -> c) carries b's incoming causality id
    assert direct != outer  # the client's two calls are separate logical threads
    # the trace tells the same story: both calls carry one causality id, each its own call id
    relay = events.events("call.dispatched", method=method)
    nested = events.events("call.dispatched", method="Cid", client="b", server="c")
    assert len(relay) == 1 and len(nested) == 1
    assert relay[0]["causality_id"] == nested[0]["causality_id"] == outer
    assert relay[0]["call_id"] != nested[0]["call_id"]


@pytest.mark.asyncio
async def test_tasks_spawned_by_server_method_share_its_causality_id(
        rt: comsim.Runtime) -> None:  # R15
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    sb = await b.run(make_probe)
    sc = await c.run(make_probe)

    async def use() -> list[int]:
        pb = comsim.unmarshal_interface(sb)
        pc = comsim.unmarshal_interface(sc)
        return await pb.Spawned(pc)

    own, in_task, via_task_call = await a.run(use)
    assert isinstance(own, int)
    assert in_task == own  # a task spawned by the method sees the call's id
    assert via_task_call == own  # and a call made from that task carries it


# --------------------------------------------------------------------------- tracing
@pytest.mark.asyncio
async def test_trace_of_a_sync_call(rt: comsim.Runtime) -> None:  # R13, R15 (trace keys)
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    stream = await b.run(make_probe)

    async def use() -> int:
        return await comsim.unmarshal_interface(stream).Cid()

    with comsim.testing.capture_trace() as events:
        cid = await a.run(use)
    mine = events.events(method="Cid")
    call_ids = {e["call_id"] for e in mine}
    assert len(call_ids) == 1
    names = [e["event"] for e in mine]
    for name in ("call.sent", "call.dispatched", "call.returned", "call.completed"):
        assert names.count(name) == 1, names
    order = [names.index(n) for n in
             ("call.sent", "call.dispatched", "call.returned", "call.completed")]
    assert order == sorted(order)
    for e in mine:
        assert e["causality_id"] == cid
        assert e["client"] == "a"
        assert e["server"] == "b"
        assert isinstance(e["call_id"], int)
    by_name = {e["event"]: e for e in mine}
    assert by_name["call.returned"]["hresult"] == hresult.S_OK
    assert by_name["call.completed"]["hresult"] == hresult.S_OK


@pytest.mark.asyncio
async def test_no_trace_without_capture(rt: comsim.Runtime,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # tracing
    assert not structlog.is_configured()
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    stream = await b.run(make_probe)

    from comsim._runtime import trace as trace_mod

    emitted: list[str] = []
    real_emit = trace_mod.emit

    def spy(event: str, **fields: Any) -> None:
        emitted.append(event)
        real_emit(event, **fields)

    monkeypatch.setattr(trace_mod, "emit", spy)

    async def use() -> int:
        return await comsim.unmarshal_interface(stream).Add(1, 2)

    assert await a.run(use) == 3
    assert emitted == []  # nobody listens: no event is even built

    with comsim.testing.capture_trace() as events:
        assert await a.run(use) == 3
    assert len(events.events("call.completed", method="Add")) == 1
    assert await a.run(use) == 3  # after the capture ends, nothing more is collected
    assert len(events.events("call.completed", method="Add")) == 1


# --------------------------------------------------------------------------- bookkeeping
@pytest.mark.asyncio
async def test_mta_calls_leave_no_pending_stack_behind(rt: comsim.Runtime) -> None:  # R31
    """Each call the MTA serves runs on a simulated thread of its own (R31); the stack of its
    pending outgoing calls goes once they have ended, so they do not pile up."""
    sta = await rt.create_sta("sta")
    s_mta = await rt.mta.run(make_probe)
    s_sta = await sta.run(make_probe)

    async def use(n: int) -> list[list[int]]:
        in_mta = comsim.unmarshal_interface(s_mta)
        in_sta = comsim.unmarshal_interface(s_sta)
        return [await in_mta.Relay(in_sta) for _ in range(n)]  # the MTA calls out each time

    before = len(rt._outgoing)
    got = await sta.run(use, 20)
    assert [outer == inner for outer, inner in got] == [True] * 20  # R15 still holds
    assert len(rt._outgoing) <= before + 1  # the STA's own stack at most, no MTA thread's


@pytest.mark.asyncio
async def test_a_call_is_never_handed_to_a_spent_server_task_slot(rt: comsim.Runtime
                                                                  ) -> None:  # R13
    """An idle server task's slot that is done already (its task was cancelled while it
    waited) is passed over: the call goes to a live server task, never into a dead slot."""
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    sb = await b.run(make_probe)

    async def use() -> int:
        return int(await comsim.unmarshal_interface(sb).Add(1, 2))

    assert await a.run(use) == 3  # b now has an idle server task

    async def spoil() -> int:
        dead = b._new_future()
        dead.cancel()
        b._idle.append(dead)  # on top of the live slot
        return len(b._idle)

    assert await b.run(spoil) >= 2
    assert await a.run(use) == 3  # served, not lost in the dead slot
