"""Asynchronous calls: call objects, ISynchronize, completion notification and server-side
ICallFactory (R19-R26). Cancellation proper (R27-R32) lives in its own file."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as H

from .. import helpers
from ..helpers import AsyncISum, ISum

INFINITE = comsim.INFINITE


# --------------------------------------------------------------------------- interfaces
class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Gate(self, gate: Any, started: Any) -> int: ...
    async def Fail(self, code: int) -> int: ...
    async def Crash(self) -> int: ...
    async def Poke(self, ev: Any) -> int: ...


class IOther(comsim.Interface):
    async def Ping(self) -> int: ...


class IPoke(comsim.Interface):
    async def Poke(self) -> int: ...


AsyncICalc = comsim.async_interface(ICalc)
AsyncIOther = comsim.async_interface(IOther)


# --------------------------------------------------------------------------- objects
class Calc(comsim.CoClass, ICalc):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []
        self.gate_done = comsim.ManualResetEvent()

    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Gate(self, gate: Any, started: Any) -> int:
        if started is not None:
            started.Signal()
        await gate.Wait(0, INFINITE)
        self.gate_done.Signal()
        return 42

    async def Fail(self, code: int) -> int:
        raise comsim.COMError(code, "asked to fail")

    async def Crash(self) -> int:
        raise ValueError("crash")

    async def Poke(self, ev: Any) -> int:
        self.seen.append(ev)
        ev.Signal()
        return 1


class Poker(comsim.CoClass, IPoke):
    def __init__(self, gate: Any) -> None:
        super().__init__()
        self.gate = gate
        self.poked_in: Any = None

    async def Poke(self) -> int:
        self.poked_in = comsim.current_apartment()
        self.gate.Signal()
        return 1


class SumCall(comsim.ServerCall, AsyncISum):
    """A server call object (R26): Begin_ starts, outer.Signal() when ready, Finish_ gives."""

    def __init__(self, outer: Any, owner: AsyncSum) -> None:
        super().__init__(outer)
        self.owner = owner
        self.result: int | None = None
        self.task: Any = None

    def Begin_Add(self, a: int, b: int) -> int:
        owner = self.owner
        owner.log.append(("begin", a, b))
        owner.began.Signal()
        self.result = a + b
        if owner.gate is None:
            owner.log.append("signal")
            if self.outer is not None:
                self.outer.Signal()
        else:
            async def later() -> None:
                await owner.gate.Wait(0, INFINITE)
                owner.log.append("signal")
                self.outer.Signal()

            self.task = asyncio.get_running_loop().create_task(later())
        return H.S_OK

    def Finish_Add(self) -> int:
        self.owner.log.append("finish")
        if self.result is not None and self.result < 0:
            raise comsim.COMError(H.E_FAIL, "negative")
        return self.result  # type: ignore[return-value]


class AsyncSum(comsim.CoClass, ISum, comsim.ICallFactory):
    def __init__(self, gate: Any = None, refuse: bool = False) -> None:
        super().__init__()
        self.gate = gate
        self.refuse = refuse
        self.began = comsim.ManualResetEvent()
        self.log: list[Any] = []
        self.created: list[Any] = []
        self.factory_args: list[Any] = []
        self.sync_calls = 0

    def CreateCall(self, async_iface: Any, outer: Any = None) -> Any:
        self.factory_args.append((async_iface, outer))
        if self.refuse:
            raise comsim.COMError(H.E_NOINTERFACE, "call me synchronously")
        call = SumCall(outer, self)
        self.created.append(call)
        return call

    async def Add(self, a: int, b: int) -> int:
        self.sync_calls += 1
        return a + b


class Notifier:
    """A plain completion sink for CreateCall(..., outer=) (R24)."""

    def __init__(self, raise_exc: bool = False) -> None:
        self.count = 0
        self.apartments: list[Any] = []
        self.polled: list[int] = []
        self.sync: Any = None
        self.raise_exc = raise_exc

    def Signal(self) -> None:
        self.count += 1
        self.apartments.append(comsim.current_apartment())
        if self.sync is not None:
            self.polled.append(poll_now(self.sync))
        if self.raise_exc:
            raise RuntimeError("boom from Signal")


# --------------------------------------------------------------------------- helpers
def poll_now(sync: Any) -> int:
    """Run ``sync.Wait(0, 0)`` to completion without yielding (0 polls: it must not wait)."""
    coro = sync.Wait(0, 0)
    try:
        coro.send(None)
    except StopIteration as stop:
        return int(stop.value)
    coro.close()
    raise AssertionError("Wait(0, 0) suspended instead of polling")


async def setup(rt: comsim.Runtime, make_obj: Any = Calc, iface: Any = ICalc) -> Any:
    p = await helpers.pair(rt, make_obj, iface, server="server", client="client", proxy=False)
    return p.server, p.client, p.obj, p.stream


def new_call(proxy: Any, async_iface: Any = AsyncICalc, outer: Any = None) -> Any:
    return helpers.new_call(proxy, async_iface, outer)


# --------------------------------------------------------------------------- R19
@pytest.mark.asyncio
async def test_call_factory_on_every_proxy(rt: comsim.Runtime) -> None:  # R19
    server, client, _obj, _ = await setup(rt)

    async def make_streams() -> Any:
        obj = Calc()
        return [comsim.marshal_interface(obj, ICalc) for _ in range(2)]

    streams = await server.run(make_streams)

    async def use(stream: Any) -> list[int]:
        p = comsim.unmarshal_interface(stream)
        results = []
        for proxy in (p, p.QueryInterface(comsim.IUnknown)):
            call = proxy.QueryInterface(comsim.ICallFactory).CreateCall(AsyncICalc)
            assert call.Begin_Add(2, 3) == H.S_OK
            results.append(await call.Finish_Add())
        return results

    assert await client.run(use, streams[0]) == [5, 5]
    assert await rt.mta.run(use, streams[1]) == [5, 5]


@pytest.mark.asyncio
async def test_call_factory_at_home_without_icallfactory(rt: comsim.Runtime) -> None:  # R19
    server = await rt.create_sta("server")

    async def at_home() -> None:
        obj = Calc()
        same = comsim.unmarshal_interface(comsim.marshal_interface(obj, ICalc))
        assert same is obj  # R8: no proxy at home
        with pytest.raises(comsim.COMError) as exc:
            same.QueryInterface(comsim.ICallFactory)
        assert exc.value.hresult == H.E_NOINTERFACE

    await server.run(at_home)


@pytest.mark.asyncio
async def test_call_factory_at_home_uses_objects_own_create_call(
        rt: comsim.Runtime) -> None:  # R19
    server = await rt.create_sta("server")

    async def at_home() -> None:
        obj = AsyncSum()
        same = comsim.unmarshal_interface(comsim.marshal_interface(obj, ISum))
        factory = same.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(AsyncISum)
        assert call is obj.created[-1]  # the object's own call object, used directly
        assert call.Begin_Add(4, 5) == H.S_OK
        assert call.Finish_Add() == 9
        assert obj.log == [("begin", 4, 5), "signal", "finish"]

    await server.run(at_home)


@pytest.mark.asyncio
async def test_create_call_rejects_wrong_interfaces(rt: comsim.Runtime) -> None:  # R19
    _server, client, _obj, stream = await setup(rt)

    async def use() -> None:
        p = comsim.unmarshal_interface(stream)
        factory = p.QueryInterface(comsim.ICallFactory)
        with pytest.raises(comsim.COMError) as exc:
            factory.CreateCall(ICalc)  # not an async interface
        assert exc.value.hresult == H.E_NOINTERFACE
        with pytest.raises(comsim.COMError) as exc:
            factory.CreateCall(AsyncIOther)  # the object does not implement IOther
        assert exc.value.hresult == H.E_NOINTERFACE
        # the factory still works afterwards
        call = factory.CreateCall(AsyncICalc)
        call.Begin_Add(1, 1)
        assert await call.Finish_Add() == 2

    await client.run(use)


# --------------------------------------------------------------------------- R20
def test_async_interface_shape() -> None:  # R20
    assert comsim.async_interface(ICalc) is AsyncICalc
    assert comsim.async_interface(ICalc) is comsim.async_interface(ICalc)
    for name in ("Add", "Gate", "Fail", "Crash", "Poke"):
        assert hasattr(AsyncICalc, "Begin_" + name), name
        assert hasattr(AsyncICalc, "Finish_" + name), name
    params = list(inspect.signature(AsyncICalc.Begin_Add).parameters)
    assert params[1:] == ["a", "b"]  # Begin_M takes M's in-parameters
    assert not hasattr(AsyncICalc, "Begin_Ping")


@pytest.mark.asyncio
async def test_begin_returns_s_ok(rt: comsim.Runtime) -> None:  # R20
    _server, client, _obj, stream = await setup(rt)

    async def use() -> Any:
        call = new_call(comsim.unmarshal_interface(stream))
        hr = call.Begin_Add(20, 22)
        return hr, await call.Finish_Add()

    hr, value = await client.run(use)
    assert hr == H.S_OK == 0
    assert value == 42


# --------------------------------------------------------------------------- R21
@pytest.mark.asyncio
async def test_begin_while_pending_and_before_finish(rt: comsim.Runtime) -> None:  # R21
    assert H.RPC_E_CALL_PENDING == 0x80010115 - 0x1_0000_0000
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream))
        call.Begin_Gate(gate, None)
        with pytest.raises(comsim.COMError) as exc:  # pending
            call.Begin_Add(1, 2)
        assert exc.value.hresult == H.RPC_E_CALL_PENDING
        gate.Signal()
        sync = call.QueryInterface(comsim.ISynchronize)
        assert await sync.Wait(0, INFINITE) == H.S_OK
        with pytest.raises(comsim.COMError) as exc:  # ended, not yet finished
            call.Begin_Add(1, 2)
        assert exc.value.hresult == H.RPC_E_CALL_PENDING
        assert await call.Finish_Gate() == 42
        call.Begin_Add(1, 2)
        assert await call.Finish_Add() == 3

    await client.run(use)


@pytest.mark.asyncio
async def test_begin_after_cancel_before_finish(rt: comsim.Runtime) -> None:  # R21
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()
    started = comsim.ManualResetEvent()

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream))
        call.Begin_Gate(gate, started)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        assert await cancel.Cancel(0) == H.S_OK
        cancel.Release()
        with pytest.raises(comsim.COMError) as exc:
            call.Begin_Add(1, 2)
        assert exc.value.hresult == H.RPC_E_CALL_PENDING
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Gate()
        assert exc.value.hresult == H.RPC_E_CALL_CANCELED
        assert call.Begin_Add(1, 2) == H.S_OK
        assert await call.Finish_Add() == 3

    try:
        await client.run(use)
    finally:
        gate.Signal()


@pytest.mark.asyncio
async def test_begin_with_bad_arguments_leaves_call_idle(rt: comsim.Runtime) -> None:  # R21
    _server, client, _obj, stream = await setup(rt)

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream))
        for args, kwargs in (((1,), {}), ((1, 2, 3), {}), ((1,), {"c": 2})):
            with pytest.raises(comsim.COMError) as exc:
                call.Begin_Add(*args, **kwargs)
            assert exc.value.hresult == H.E_INVALIDARG
        # still idle: nothing to finish, and a correct Begin_ works
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Add()
        assert exc.value.hresult == H.RPC_E_CALL_COMPLETE
        assert call.Begin_Add(1, 2) == H.S_OK
        assert await call.Finish_Add() == 3

    await client.run(use)


# --------------------------------------------------------------------------- R22
@pytest.mark.asyncio
async def test_finish_gives_result_or_server_failure(rt: comsim.Runtime) -> None:  # R22, R14
    _server, client, _obj, stream = await setup(rt)

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream))
        call.Begin_Add(7, 8)
        assert await call.Finish_Add() == 15
        call.Begin_Fail(H.E_FAIL)
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Fail()
        assert exc.value.hresult == H.E_FAIL
        call.Begin_Fail(H.CO_E_OBJNOTREG)
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Fail()
        assert exc.value.hresult == H.CO_E_OBJNOTREG
        call.Begin_Crash()
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Crash()
        assert exc.value.hresult == H.RPC_E_SERVERFAULT

    await client.run(use)


@pytest.mark.asyncio
async def test_finish_without_call_in_progress(rt: comsim.Runtime) -> None:  # R22
    _server, client, _obj, stream = await setup(rt)

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream))
        with pytest.raises(comsim.COMError) as exc:  # never begun
            await call.Finish_Add()
        assert exc.value.hresult == H.RPC_E_CALL_COMPLETE
        call.Begin_Add(1, 2)
        assert await call.Finish_Add() == 3
        with pytest.raises(comsim.COMError) as exc:  # finished twice
            await call.Finish_Add()
        assert exc.value.hresult == H.RPC_E_CALL_COMPLETE

    await client.run(use)


@pytest.mark.asyncio
async def test_finish_of_other_method_changes_nothing(rt: comsim.Runtime) -> None:  # R22
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream))
        sync = call.QueryInterface(comsim.ISynchronize)
        # while pending: refused at once, not waited
        call.Begin_Gate(gate, None)
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Add()
        assert exc.value.hresult == H.E_INVALIDARG
        assert await sync.Wait(0, 0) == H.RPC_S_CALLPENDING
        gate.Signal()
        assert await call.Finish_Gate() == 42
        # once ended: refused, the event stays set and the right Finish_ still delivers
        call.Begin_Add(5, 6)
        assert await sync.Wait(0, INFINITE) == H.S_OK
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Gate()
        assert exc.value.hresult == H.E_INVALIDARG
        assert await sync.Wait(0, 0) == H.S_OK
        with pytest.raises(comsim.COMError) as exc:
            call.Begin_Add(1, 1)
        assert exc.value.hresult == H.RPC_E_CALL_PENDING
        assert await call.Finish_Add() == 11

    await client.run(use)


@pytest.mark.asyncio
async def test_call_object_reused_many_times(rt: comsim.Runtime) -> None:  # R22
    _server, client, _obj, stream = await setup(rt)

    async def use() -> list[int]:
        call = new_call(comsim.unmarshal_interface(stream))
        out = []
        for i in range(25):
            assert call.Begin_Add(i, i) == H.S_OK
            out.append(await call.Finish_Add())
        call.Begin_Fail(H.E_FAIL)
        with pytest.raises(comsim.COMError):
            await call.Finish_Fail()
        call.Begin_Add(100, 1)  # a failure does not spoil the call object either
        out.append(await call.Finish_Add())
        return out

    assert await client.run(use) == [2 * i for i in range(25)] + [101]


# --------------------------------------------------------------------------- R23
@pytest.mark.asyncio
async def test_synchronize_event_lifecycle(rt: comsim.Runtime) -> None:  # R23
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream))
        sync = call.QueryInterface(comsim.ISynchronize)
        assert await sync.Wait(0, 0) == H.RPC_S_CALLPENDING  # clear before the first Begin_
        call.Begin_Gate(gate, None)
        assert await sync.Wait(0, 0) == H.RPC_S_CALLPENDING
        assert await sync.Wait(1, 0) == H.RPC_S_CALLPENDING  # flags ignored
        gate.Signal()
        assert await sync.Wait(0, INFINITE) == H.S_OK
        assert await sync.Wait(0, 0) == H.S_OK  # stays set until Finish_
        assert await call.Finish_Gate() == 42
        assert await sync.Wait(0, 0) == H.RPC_S_CALLPENDING  # cleared by Finish_
        sync.Signal()  # set it by hand: Begin_ must clear it
        assert await sync.Wait(0, 0) == H.S_OK
        gate.Reset()
        call.Begin_Gate(gate, None)
        assert await sync.Wait(0, 0) == H.RPC_S_CALLPENDING  # cleared by Begin_
        gate.Signal()
        assert await sync.Wait(0, INFINITE) == H.S_OK
        assert await call.Finish_Gate() == 42

    await client.run(use)


@pytest.mark.asyncio
async def test_synchronize_wait_times_out(rt: comsim.Runtime) -> None:  # R23
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()

    async def use() -> Any:
        call = new_call(comsim.unmarshal_interface(stream))
        sync = call.QueryInterface(comsim.ISynchronize)
        call.Begin_Gate(gate, None)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        hr = await sync.Wait(0, 50)
        elapsed = loop.time() - t0
        gate.Signal()
        assert await call.Finish_Gate() == 42
        return hr, elapsed

    try:
        hr, elapsed = await client.run(use)
    finally:
        gate.Signal()
    assert hr == H.RPC_S_CALLPENDING
    assert elapsed >= 0.045


@pytest.mark.asyncio
@pytest.mark.deterministic_only
async def test_synchronize_long_wait_times_out(rt: comsim.Runtime) -> None:  # R23
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()

    async def use() -> Any:
        call = new_call(comsim.unmarshal_interface(stream))
        sync = call.QueryInterface(comsim.ISynchronize)
        call.Begin_Gate(gate, None)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        hr = await sync.Wait(0, 600_000)  # ten virtual minutes
        elapsed = loop.time() - t0
        gate.Signal()
        assert await sync.Wait(0, 600_000) == H.S_OK
        assert await call.Finish_Gate() == 42
        return hr, elapsed

    hr, elapsed = await client.run(use)
    assert hr == H.RPC_S_CALLPENDING
    assert 600.0 <= elapsed < 601.0


@pytest.mark.asyncio
async def test_synchronize_wait_in_sta_is_com_wait(rt: comsim.Runtime) -> None:  # R23, R2
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()

    async def make_poker() -> Any:
        poker = Poker(gate)
        return poker, comsim.marshal_interface(poker, IPoke)

    poker, poke_stream = await client.run(make_poker)

    async def use() -> int:
        call = new_call(comsim.unmarshal_interface(stream))
        sync = call.QueryInterface(comsim.ISynchronize)
        call.Begin_Gate(gate, None)
        # only the incoming Poke (served in this STA while it waits) opens the gate
        assert await sync.Wait(0, INFINITE) == H.S_OK
        return await call.Finish_Gate()

    async def poke() -> int:
        return await comsim.unmarshal_interface(poke_stream).Poke()

    results: dict[str, int] = {}

    async def run_use() -> None:
        results["use"] = await client.run(use)

    async def run_poke() -> None:
        results["poke"] = await rt.mta.run(poke)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_use)
        tg.start_soon(run_poke)
    assert results == {"use": 42, "poke": 1}
    assert poker.poked_in is client


@pytest.mark.asyncio
async def test_std_and_manual_reset_events(rt: comsim.Runtime) -> None:  # R23
    sta = await rt.create_sta("events")

    async def use() -> None:
        std = comsim.StdEvent()
        manual = comsim.ManualResetEvent()
        assert await std.Wait(0, 0) == H.RPC_S_CALLPENDING
        assert await manual.Wait(0, 0) == H.RPC_S_CALLPENDING
        std.Signal()
        manual.Signal()
        assert await std.Wait(0, 0) == H.S_OK
        assert await std.Wait(0, 0) == H.RPC_S_CALLPENDING  # auto-reset
        assert await manual.Wait(0, 0) == H.S_OK
        assert await manual.Wait(0, INFINITE) == H.S_OK  # stays set
        assert await manual.Wait(0, 10) == H.S_OK
        manual.Reset()
        assert await manual.Wait(0, 0) == H.RPC_S_CALLPENDING
        std.Signal()
        std.Reset()
        assert await std.Wait(0, 0) == H.RPC_S_CALLPENDING
        assert await std.Wait(0, 20) == H.RPC_S_CALLPENDING

    await sta.run(use)


@pytest.mark.asyncio
async def test_events_pass_by_reference_across_apartments(rt: comsim.Runtime) -> None:  # R23
    _server, client, obj, stream = await setup(rt)
    std = comsim.StdEvent()
    manual = comsim.ManualResetEvent()

    async def use() -> None:
        p = comsim.unmarshal_interface(stream)
        assert await p.Poke(std) == 1
        assert await std.Wait(0, INFINITE) == H.S_OK
        assert await std.Wait(0, 0) == H.RPC_S_CALLPENDING
        assert await p.Poke(manual) == 1
        assert await manual.Wait(0, 0) == H.S_OK
        assert await manual.Wait(0, 0) == H.S_OK
        manual.Reset()
        assert await manual.Wait(0, 0) == H.RPC_S_CALLPENDING

    await client.run(use)
    assert obj.seen[0] is std
    assert obj.seen[1] is manual


# --------------------------------------------------------------------------- R24
@pytest.mark.asyncio
async def test_outer_signal_once_after_own_event_on_client(rt: comsim.Runtime) -> None:  # R24
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()
    note = Notifier()

    async def use() -> None:
        p = comsim.unmarshal_interface(stream)
        call = new_call(p, outer=note)
        note.sync = call.QueryInterface(comsim.ISynchronize)
        call.Begin_Gate(gate, None)
        assert note.count == 0
        gate.Signal()
        assert await call.Finish_Gate() == 42
        assert note.count == 1
        assert await p.Add(1, 1) == 2  # more traffic: still one Signal
        assert note.count == 1
        call.Begin_Add(2, 2)
        assert await call.Finish_Add() == 4
        assert note.count == 2  # once per call

    await client.run(use)
    assert note.apartments == [client, client]
    assert note.polled == [H.S_OK, H.S_OK]  # the call's own event was already set


@pytest.mark.asyncio
async def test_outer_signal_on_cancel_route(rt: comsim.Runtime) -> None:  # R24, R28
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()
    started = comsim.ManualResetEvent()
    note = Notifier()

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream), outer=note)
        note.sync = call.QueryInterface(comsim.ISynchronize)
        call.Begin_Gate(gate, started)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        assert await cancel.Cancel(0) == H.S_OK
        assert note.count == 1
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Gate()
        assert exc.value.hresult == H.RPC_E_CALL_CANCELED
        assert note.count == 1

    try:
        await client.run(use)
    finally:
        gate.Signal()
    assert note.apartments == [client]
    assert note.polled == [H.S_OK]


@pytest.mark.asyncio
async def test_outer_signal_exception_is_swallowed_and_traced(rt: comsim.Runtime) -> None:  # R24
    _server, client, _obj, stream = await setup(rt)
    note = Notifier(raise_exc=True)

    async def use() -> int:
        call = new_call(comsim.unmarshal_interface(stream), outer=note)
        call.Begin_Add(3, 4)
        return await call.Finish_Add()

    with comsim.testing.capture_trace() as events:
        assert await client.run(use) == 7
    assert note.count == 1
    assert [e for e in events if "boom from Signal" in str(e.get("exc", ""))]


@pytest.mark.asyncio
async def test_outer_does_not_replace_call_event(rt: comsim.Runtime) -> None:  # R24
    _server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()
    note = Notifier()

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream), outer=note)
        sync = call.QueryInterface(comsim.ISynchronize)
        assert sync is not note
        assert await sync.Wait(0, 0) == H.RPC_S_CALLPENDING
        call.Begin_Gate(gate, None)
        assert await sync.Wait(0, 0) == H.RPC_S_CALLPENDING
        gate.Signal()
        assert await sync.Wait(0, INFINITE) == H.S_OK
        assert note.count == 1
        assert await call.Finish_Gate() == 42
        assert await sync.Wait(0, 0) == H.RPC_S_CALLPENDING

    await client.run(use)


# --------------------------------------------------------------------------- R25
async def _drain(proxy: Any, events: Any, **match: Any) -> list[dict[str, Any]]:
    """Round trips to the server until the trace shows ``call.reply_dropped`` (bounded)."""
    for _ in range(200):
        found = events.events("call.reply_dropped", **match)
        if found:
            return found  # type: ignore[no-any-return]
        await proxy.Add(0, 0)
    return []


@pytest.mark.asyncio
async def test_release_without_finish(rt: comsim.Runtime) -> None:  # R25
    _server, client, obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()

    async def use() -> Any:
        p = comsim.unmarshal_interface(stream)
        call = new_call(p)
        call.Begin_Gate(gate, None)
        assert call.Release() == 0  # no exception, no cancel
        gate.Signal()
        assert await obj.gate_done.Wait(0, INFINITE) == H.S_OK  # the server ran to the end
        return await _drain(p, events, method="Gate")

    with comsim.testing.capture_trace() as events:
        dropped = await client.run(use)
    assert dropped, "the released call's reply was not traced as dropped"
    assert dropped[0]["hresult"] == H.S_OK  # the server did its work
    assert not events.events("call.cancel_requested", method="Gate")
    assert not events.events("call.cancelled", method="Gate")


@pytest.mark.asyncio
async def test_query_interface_shares_reference_count(rt: comsim.Runtime) -> None:  # R25
    _server, client, obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()

    async def use() -> Any:
        p = comsim.unmarshal_interface(stream)
        call = new_call(p)
        assert call.AddRef() == 2
        sync = call.QueryInterface(comsim.ISynchronize)  # 3
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)  # 4
        assert sync.AddRef() == 5
        assert cancel.Release() == 4
        assert call.Release() == 3
        assert sync.Release() == 2
        same = sync.QueryInterface(AsyncICalc)  # back to the call object: 3
        assert same.Release() == 2
        call.Begin_Gate(gate, None)
        assert call.Release() == 1
        assert sync.Release() == 0  # the last reference, through a facet: the call is released
        gate.Signal()
        assert await obj.gate_done.Wait(0, INFINITE) == H.S_OK
        return await _drain(p, events, method="Gate")

    with comsim.testing.capture_trace() as events:
        dropped = await client.run(use)
    assert dropped and dropped[0]["hresult"] == H.S_OK


# --------------------------------------------------------------------------- R26
async def _setup_sum(rt: comsim.Runtime, gate: Any = None, refuse: bool = False) -> Any:
    return await setup(rt, lambda: AsyncSum(gate, refuse), ISum)


@pytest.mark.asyncio
async def test_server_call_object_sync_client(rt: comsim.Runtime) -> None:  # R26
    gate = comsim.ManualResetEvent()
    _server, client, obj, stream = await _setup_sum(rt, gate)

    async def use() -> int:
        return await comsim.unmarshal_interface(stream).Add(2, 3)

    async def open_gate() -> None:
        await obj.began.Wait(0, INFINITE)
        assert obj.log == [("begin", 2, 3)]  # the stub waits for Signal before Finish_
        gate.Signal()

    results = {}

    async def run_use() -> None:
        results["use"] = await client.run(use)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_use)
        tg.start_soon(open_gate)
    assert results["use"] == 5
    assert obj.log == [("begin", 2, 3), "signal", "finish"]
    assert obj.sync_calls == 0
    assert len(obj.factory_args) == 1
    iface, outer = obj.factory_args[0]
    assert iface is AsyncISum
    assert outer is not None


@pytest.mark.asyncio
async def test_server_call_object_async_client(rt: comsim.Runtime) -> None:  # R26
    gate = comsim.ManualResetEvent()
    _server, client, obj, stream = await _setup_sum(rt, gate)

    async def use() -> int:
        call = new_call(comsim.unmarshal_interface(stream), AsyncISum)
        sync = call.QueryInterface(comsim.ISynchronize)
        call.Begin_Add(20, 22)
        assert await obj.began.Wait(0, INFINITE) == H.S_OK
        assert await sync.Wait(0, 0) == H.RPC_S_CALLPENDING  # no Signal yet: no reply
        gate.Signal()
        return await call.Finish_Add()

    assert await client.run(use) == 42
    assert obj.log == [("begin", 20, 22), "signal", "finish"]
    assert obj.sync_calls == 0


@pytest.mark.asyncio
async def test_server_call_object_immediate_signal_and_failure(
        rt: comsim.Runtime) -> None:  # R26, R22
    _server, client, obj, stream = await _setup_sum(rt)

    async def use() -> None:
        p = comsim.unmarshal_interface(stream)
        assert await p.Add(1, 2) == 3
        call = new_call(p, AsyncISum)
        call.Begin_Add(4, 4)
        assert await call.Finish_Add() == 8
        with pytest.raises(comsim.COMError) as exc:
            await p.Add(-5, 1)  # the server call's Finish_ raises
        assert exc.value.hresult == H.E_FAIL

    await client.run(use)
    assert obj.sync_calls == 0
    assert len(obj.created) == 3


@pytest.mark.asyncio
async def test_server_create_call_refused_runs_synchronously(rt: comsim.Runtime) -> None:  # R26
    _server, client, obj, stream = await _setup_sum(rt, refuse=True)

    async def use() -> list[int]:
        p = comsim.unmarshal_interface(stream)
        out = [await p.Add(1, 2)]
        call = new_call(p, AsyncISum)
        call.Begin_Add(3, 4)
        out.append(await call.Finish_Add())
        return out

    assert await client.run(use) == [3, 7]
    assert obj.sync_calls == 2
    assert len(obj.factory_args) == 2
    assert obj.log == []


# --------------------------------------------------------------------------- shutdown
@pytest.mark.asyncio
async def test_server_shutdown_with_async_calls_pending(rt: comsim.Runtime) -> None:  # R18, R22
    server, client, _obj, stream = await setup(rt)
    gate = comsim.ManualResetEvent()
    started = comsim.ManualResetEvent()

    async def begin() -> Any:
        p = comsim.unmarshal_interface(stream)
        calls = [new_call(p), new_call(p)]
        calls[0].Begin_Gate(gate, started)
        calls[1].Begin_Gate(gate, None)
        await started.Wait(0, INFINITE)
        return calls

    calls = await client.run(begin)
    await server.shutdown()

    async def finish() -> list[int]:
        codes = []
        for call in calls:
            with pytest.raises(comsim.COMError) as exc:
                await call.Finish_Gate()
            codes.append(exc.value.hresult)
        return codes

    assert await client.run(finish) == [H.RPC_E_DISCONNECTED, H.RPC_E_DISCONNECTED]
