"""Cancellation (R27, R28, R30, R31, R32); R29's three stages are in test_cancel_stages.py.

The seed page, Microsoft's "Canceling an Asynchronous Call": QueryInterface the call object for
ICancelMethodCalls, Cancel, Release, then Finish_. Interleavings are forced with free-threaded
ManualResetEvents passed in the call arguments; a cooperative server polls CoTestCancel as a COM
server does (R30).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr

from .. import helpers
from ..helpers import drain, until_cancelled

INFINITE = comsim.INFINITE
NO_LIMIT = comsim.RPC_C_CANCEL_INFINITE_TIMEOUT


class IWork(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Block(self, started: Any, release: Any, done: Any) -> str: ...
    async def Acknowledge(self, started: Any, done: Any) -> str: ...
    async def Ignore(self, started: Any, saw: Any, release: Any, done: Any,
                     acknowledge: bool) -> str: ...
    async def Shielded(self, started: Any, done: Any, then_wait: bool) -> str: ...
    async def Spawn(self, started: Any) -> str: ...
    async def Linger(self, started: Any, seconds: float) -> str: ...
    async def Probe(self) -> int: ...
    async def Relay(self, target: Any, started: Any) -> str: ...
    async def Ping(self) -> str: ...


class IOther(comsim.Interface):
    async def Echo(self, x: str) -> str: ...


AsyncIWork = comsim.async_interface(IWork)
AsyncIOther = comsim.async_interface(IOther)


class Worker(comsim.CoClass, IWork, IOther):
    """Writes down what it did in `log` (handed over by reference through Apartment.run)."""

    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log

    async def Add(self, a: int, b: int) -> int:
        self.log.append(("Add", a, b))
        return a + b

    async def Echo(self, x: str) -> str:
        return x

    async def Block(self, started: Any, release: Any, done: Any) -> str:
        self.log.append("Block:start")
        try:
            started.Signal()
            await release.Wait(0, INFINITE)
            self.log.append("Block:done")
            return "released"
        except anyio.get_cancelled_exc_class():
            self.log.append("Block:interrupted")
            raise
        finally:
            done.Signal()  # nothing awaits after this: the reply is sent in the same step

    async def Acknowledge(self, started: Any, done: Any) -> str:
        try:
            self.log.append(("Acknowledge:before", comsim.CoTestCancel()))
            started.Signal()
            await until_cancelled()
            self.log.append(("Acknowledge:after", comsim.CoTestCancel()))
            raise comsim.COMError(hr.RPC_E_CALL_CANCELED, "stopped on request")
        except anyio.get_cancelled_exc_class():
            self.log.append("Acknowledge:interrupted")
            raise
        finally:
            done.Signal()

    async def Ignore(self, started: Any, saw: Any, release: Any, done: Any,
                     acknowledge: bool) -> str:
        """Sees the cancel, then goes on until `release` (cooperative objects only)."""
        try:
            started.Signal()
            await until_cancelled()
            self.log.append(("Ignore:saw", comsim.CoTestCancel()))
            saw.Signal()
            await release.Wait(0, INFINITE)
            self.log.append("Ignore:done")
            if acknowledge:
                raise comsim.COMError(hr.RPC_E_CALL_CANCELED, "stopped, late")
            return "late"
        finally:
            done.Signal()

    async def Shielded(self, started: Any, done: Any, then_wait: bool) -> str:
        try:
            with anyio.CancelScope(shield=True):
                started.Signal()
                await until_cancelled()  # the cancel does not interrupt shielded work
                await anyio.sleep(0.001)
                self.log.append(("Shielded:work", comsim.CoTestCancel()))
            if then_wait:
                try:
                    await anyio.sleep_forever()
                except anyio.get_cancelled_exc_class():
                    self.log.append("Shielded:interrupted after the shield")
                    raise
            return "shielded"
        finally:
            done.Signal()

    async def Spawn(self, started: Any) -> str:
        self.log.append(("method:before", comsim.CoTestCancel()))

        async def child() -> None:
            self.log.append(("child:before", comsim.CoTestCancel()))
            started.Signal()
            await until_cancelled()
            self.log.append(("child:after", comsim.CoTestCancel()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
        self.log.append(("method:after", comsim.CoTestCancel()))
        raise comsim.COMError(hr.RPC_E_CALL_CANCELED, "stopped on request")

    async def Linger(self, started: Any, seconds: float) -> str:
        started.Signal()
        await until_cancelled()
        await anyio.sleep(seconds)
        self.log.append("Linger:done")
        return "lingered"

    async def Probe(self) -> int:
        return comsim.CoTestCancel()

    async def Relay(self, target: Any, started: Any) -> str:
        """Calls back into `target` (a Nested object in the caller's apartment)."""
        return str(await target.Inner(started))

    async def Ping(self) -> str:
        self.log.append("Ping")
        return "pong"


class CoopWorker(Worker):
    cancel_policy = "cooperative"


async def setup(rt: comsim.Runtime, cls: type[Worker] = Worker) -> tuple[
        comsim.Apartment, comsim.Apartment, Any, list[Any]]:
    """A server STA with one object and a client STA holding a proxy to it."""
    log: list[Any] = []
    p = await helpers.pair(rt, lambda: cls(log), IWork)
    return p.server, p.client, p.proxy, log


def new_call(proxy: Any, iface: Any = AsyncIWork) -> Any:
    return helpers.new_call(proxy, iface)


def events_for(events: Any, name: str, method: str) -> list[dict[str, Any]]:
    ids = {e["call_id"] for e in events.events("call.sent", method=method)}
    return [e for e in events.events(name) if e["call_id"] in ids]


# ================================================================================ R27
@pytest.mark.asyncio
async def test_icancelmethodcalls_on_every_call_object(rt: comsim.Runtime) -> None:  # R27
    _srv, cli, proxy, _log = await setup(rt)

    async def client() -> None:
        for iface in (AsyncIWork, AsyncIOther):
            call = new_call(proxy, iface)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            # one reference count shared with the call object (R25)
            assert call.AddRef() == 3
            assert call.Release() == 2
            assert await cancel.Cancel(0) == hr.RPC_E_CALL_COMPLETE
            assert cancel.TestCancel() == hr.RPC_E_CALL_COMPLETE
            # ICancelMethodCalls leads back to the call object's other interfaces
            sync = cancel.QueryInterface(comsim.ISynchronize)
            assert await sync.Wait(0, 0) == hr.RPC_S_CALLPENDING  # clear before any Begin_
            assert sync.Release() == 2
            assert cancel.Release() == 1
            assert call.Release() == 0

    await cli.run(client)


@pytest.mark.asyncio
async def test_seed_procedure_step_by_step(rt: comsim.Runtime) -> None:  # R27 R28 R22
    """Begin_, then: 1. QueryInterface for ICancelMethodCalls; 2. Cancel, then Release the
    pointer from step 1; 3. Finish_ to clean the call object up -- which can then begin again."""
    _srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> None:
        call = new_call(proxy)
        assert call.Begin_Block(started, release, done) == hr.S_OK
        assert await started.Wait(0, INFINITE) == hr.S_OK
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)  # step 1
        assert await cancel.Cancel(0) == hr.S_OK  # step 2
        assert cancel.Release() == 1  # the call object keeps its own reference
        with pytest.raises(comsim.COMError) as exc:  # step 3
            await call.Finish_Block()
        assert exc.value.hresult == hr.RPC_E_CALL_CANCELED
        # the call object is clean: a new call on it works as usual
        assert call.Begin_Add(2, 3) == hr.S_OK
        assert await call.Finish_Add() == 5
        assert call.Release() == 0

    with comsim.testing.capture_trace() as events:
        await cli.run(client)
        assert await done.Wait(0, INFINITE) == hr.S_OK
    # no guarantee the server stopped; with the default "interrupt" policy it was interrupted
    # (the Add may have run nested while Block was still in its COM wait: R2)
    assert sorted(map(str, log)) == sorted(map(str, ["Block:start", "Block:interrupted",
                                                     ("Add", 2, 3)]))
    assert len(events_for(events, "call.cancel_requested", "Block")) == 1


@pytest.mark.asyncio
async def test_cancel_right_after_begin(rt: comsim.Runtime) -> None:  # R27 R29
    """Cancel may come at once after Begin_: the request is either still queued (never runs)
    or the method is interrupted; either way the call ends cancelled."""
    srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    with comsim.testing.capture_trace() as events:
        async def client() -> None:
            call = new_call(proxy)
            call.Begin_Block(started, release, done)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            assert await cancel.Cancel(0) == hr.S_OK
            cancel.Release()
            with pytest.raises(comsim.COMError) as exc:
                await call.Finish_Block()
            assert exc.value.hresult == hr.RPC_E_CALL_CANCELED
            assert await proxy.Ping() == "pong"

        await cli.run(client)
        if "Block:start" in log:
            assert await done.Wait(0, INFINITE) == hr.S_OK
        await drain(rt, srv, cli)

    assert "Block:done" not in log
    (stage,) = [e["stage"] for e in events_for(events, "call.cancelled", "Block")]
    assert stage == ("running" if "Block:start" in log else "queued")


@pytest.mark.asyncio
async def test_cancel_while_finish_waits(rt: comsim.Runtime) -> None:  # R27 R22
    """Until Finish_ returns the call may be cancelled: a task awaiting Finish_ then gets
    RPC_E_CALL_CANCELED."""
    _srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> list[Any]:
        call = new_call(proxy)
        call.Begin_Block(started, release, done)
        got: list[Any] = []

        async def finisher() -> None:
            try:
                got.append(await call.Finish_Block())
            except comsim.COMError as exc:
                got.append(exc.hresult)

        async with anyio.create_task_group() as tg:
            tg.start_soon(finisher)
            await started.Wait(0, INFINITE)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            got.append(await cancel.Cancel(0))
            cancel.Release()
        return got

    assert await cli.run(client) == [hr.S_OK, hr.RPC_E_CALL_CANCELED]
    assert await done.Wait(0, INFINITE) == hr.S_OK
    assert "Block:interrupted" in log


# ================================================================================ R28
@pytest.mark.asyncio
async def test_cancel_with_no_call_in_progress(rt: comsim.Runtime) -> None:  # R28 R22
    _srv, cli, proxy, _log = await setup(rt)

    async def client() -> None:
        call = new_call(proxy)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        assert await cancel.Cancel(0) == hr.RPC_E_CALL_COMPLETE  # never begun
        assert await cancel.Cancel(5) == hr.RPC_E_CALL_COMPLETE  # does not wait either
        call.Begin_Add(1, 2)
        assert await call.Finish_Add() == 3
        assert await cancel.Cancel(0) == hr.RPC_E_CALL_COMPLETE  # after Finish_
        assert cancel.TestCancel() == hr.RPC_E_CALL_COMPLETE

    await cli.run(client)


@pytest.mark.asyncio
async def test_cancel_after_reply_taken_in(rt: comsim.Runtime) -> None:  # R28 R23
    _srv, cli, proxy, _log = await setup(rt)

    with comsim.testing.capture_trace() as events:
        async def client() -> None:
            call = new_call(proxy)
            call.Begin_Add(1, 2)
            sync = call.QueryInterface(comsim.ISynchronize)
            assert await sync.Wait(0, INFINITE) == hr.S_OK  # the reply is taken in
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            assert cancel.TestCancel() == hr.RPC_E_CALL_COMPLETE
            assert await cancel.Cancel(0) == hr.RPC_E_CALL_COMPLETE
            assert await cancel.Cancel(10) == hr.RPC_E_CALL_COMPLETE
            assert await call.Finish_Add() == 3  # the result is not lost

        await cli.run(client)
    assert events_for(events, "call.cancel_requested", "Add") == []
    assert events_for(events, "call.cancelled", "Add") == []


@pytest.mark.asyncio
async def test_second_cancel_gives_call_canceled(rt: comsim.Runtime) -> None:  # R28
    _srv, cli, proxy, _log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> None:
        call = new_call(proxy)
        call.Begin_Block(started, release, done)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        assert await cancel.Cancel(0) == hr.S_OK
        assert await cancel.Cancel(0) == hr.RPC_E_CALL_CANCELED
        assert await cancel.Cancel(30) == hr.RPC_E_CALL_CANCELED
        assert await cancel.Cancel(NO_LIMIT) == hr.RPC_E_CALL_CANCELED
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Block()
        assert exc.value.hresult == hr.RPC_E_CALL_CANCELED

    await cli.run(client)


@pytest.mark.asyncio
async def test_second_cancel_during_grace_period(rt: comsim.Runtime) -> None:  # R28
    """While a first Cancel(seconds) waits for the reply, a second Cancel gives
    RPC_E_CALL_CANCELED; the server's late acknowledgement then ends the first with S_OK."""
    _srv, cli, proxy, log = await setup(rt, CoopWorker)
    started, saw, release, done = (comsim.ManualResetEvent() for _ in range(4))

    async def client() -> list[Any]:
        call = new_call(proxy)
        call.Begin_Ignore(started, saw, release, done, True)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        got: list[Any] = []

        async def first() -> None:
            got.append(("first", await cancel.Cancel(NO_LIMIT)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await saw.Wait(0, INFINITE)  # the server was told: the first Cancel is waiting
            got.append(("test", cancel.TestCancel()))
            got.append(("second", await cancel.Cancel(0)))
            got.append(("second", await cancel.Cancel(5)))
            release.Signal()
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Ignore()
        got.append(("finish", exc.value.hresult))
        return got

    assert await cli.run(client) == [
        ("test", hr.RPC_E_CALL_CANCELED),
        ("second", hr.RPC_E_CALL_CANCELED),
        ("second", hr.RPC_E_CALL_CANCELED),
        ("first", hr.S_OK),
        ("finish", hr.RPC_E_CALL_CANCELED),
    ]
    assert log == [("Ignore:saw", hr.RPC_E_CALL_CANCELED), "Ignore:done"]


@pytest.mark.asyncio
async def test_grace_period_server_returns_normally(rt: comsim.Runtime) -> None:  # R28 R30
    """A server that finishes its shielded work within the grace period and returns normally:
    Cancel gives RPC_E_CALL_COMPLETE and Finish_ gives the result."""
    _srv, cli, proxy, log = await setup(rt)
    started, done = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    with comsim.testing.capture_trace() as events:
        async def client() -> tuple[Any, ...]:
            call = new_call(proxy)
            call.Begin_Shielded(started, done, False)
            await started.Wait(0, INFINITE)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            hr_cancel = await cancel.Cancel(30)
            hr_test = cancel.TestCancel()
            return hr_cancel, hr_test, await call.Finish_Shielded()

        assert await cli.run(client) == (hr.RPC_E_CALL_COMPLETE, hr.RPC_E_CALL_COMPLETE,
                                         "shielded")
    assert log == [("Shielded:work", hr.RPC_E_CALL_CANCELED)]
    assert len(events_for(events, "call.cancel_requested", "Shielded")) == 1
    assert events_for(events, "call.cancelled", "Shielded") == []
    assert events_for(events, "call.reply_dropped", "Shielded") == []
    (completed,) = events_for(events, "call.completed", "Shielded")
    assert completed["hresult"] == hr.S_OK


@pytest.mark.parametrize("server", ["sta", "mta"])
@pytest.mark.asyncio
async def test_a_cancel_the_method_outlived_reaches_no_later_call(rt: comsim.Runtime,
                                                                 server: str) -> None:  # R30
    """A server task serves call after call in one cancel scope. A cancel that reached a method
    which then returned normally must not interrupt the later calls that task serves."""
    srv = await rt.create_sta("srv") if server == "sta" else rt.mta
    cli = await rt.create_sta("cli")
    log: list[Any] = []
    stream = await srv.run(lambda: comsim.marshal_interface(Worker(log), IWork))
    started, done = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def client() -> tuple[Any, ...]:
        proxy = comsim.unmarshal_interface(stream)
        call = new_call(proxy)
        call.Begin_Shielded(started, done, False)
        await started.Wait(0, INFINITE)
        hr_cancel = await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(30)
        first = await call.Finish_Shielded()
        sums = [await proxy.Add(i, 1) for i in range(3)]
        # a later call that awaits: a stale interrupt would land here
        go, release, fin = (comsim.ManualResetEvent() for _ in range(3))
        call.Begin_Block(go, release, fin)
        await go.Wait(0, INFINITE)
        release.Signal()
        return hr_cancel, first, sums, await call.Finish_Block()

    assert await cli.run(client) == (hr.RPC_E_CALL_COMPLETE, "shielded", [1, 2, 3],
                                     "released")
    assert log[-5:] == [("Add", 0, 1), ("Add", 1, 1), ("Add", 2, 1), "Block:start",
                        "Block:done"]
    # and the server tasks waiting for calls all wait for real (none with a spent scope)
    waiting = await srv.run(lambda: [slot.done() for slot in srv._idle])
    assert waiting and not any(waiting)


@pytest.mark.parametrize("cls,method", [(Worker, "Block"), (CoopWorker, "Acknowledge")])
@pytest.mark.asyncio
async def test_grace_period_server_acknowledges(rt: comsim.Runtime, cls: type[Worker],
                                                method: str) -> None:  # R28 R30
    """A server that answers RPC_E_CALL_CANCELED within the grace period (interrupted, or
    stopping itself): Cancel gives S_OK and that reply is not dropped -- it ended the call."""
    srv, cli, proxy, log = await setup(rt, cls)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))
    args = (started, release, done) if method == "Block" else (started, done)

    with comsim.testing.capture_trace() as events:
        async def client() -> tuple[Any, ...]:
            call = new_call(proxy)
            getattr(call, "Begin_" + method)(*args)
            await started.Wait(0, INFINITE)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            hr_cancel = await cancel.Cancel(30)
            with pytest.raises(comsim.COMError) as exc:
                await getattr(call, "Finish_" + method)()
            return hr_cancel, exc.value.hresult

        assert await cli.run(client) == (hr.S_OK, hr.RPC_E_CALL_CANCELED)
        await drain(rt, srv, cli)
    if method == "Block":
        assert log == ["Block:start", "Block:interrupted"]
    else:
        assert log == [("Acknowledge:before", hr.RPC_S_CALLPENDING),
                       ("Acknowledge:after", hr.RPC_E_CALL_CANCELED)]
    assert [e["stage"] for e in events_for(events, "call.cancelled", method)] == ["running"]
    assert events_for(events, "call.reply_dropped", method) == []


@pytest.mark.asyncio
async def test_grace_period_server_ignores_cancel(rt: comsim.Runtime) -> None:  # R28 R29
    """A cooperative server that sees the cancel but keeps going: after the grace period Cancel
    gives S_OK, Finish_ raises RPC_E_CALL_CANCELED, and the late reply is dropped and traced."""
    srv, cli, proxy, log = await setup(rt, CoopWorker)
    started, saw, release, done = (comsim.ManualResetEvent() for _ in range(4))
    grace = 0.05
    loop = asyncio.get_running_loop()

    with comsim.testing.capture_trace() as events:
        async def client() -> tuple[Any, ...]:
            call = new_call(proxy)
            call.Begin_Ignore(started, saw, release, done, False)
            await started.Wait(0, INFINITE)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            t0 = loop.time() if rt.deterministic else time.monotonic()
            hr_cancel = await cancel.Cancel(grace)
            elapsed = (loop.time() if rt.deterministic else time.monotonic()) - t0
            with pytest.raises(comsim.COMError) as exc:
                await call.Finish_Ignore()
            return hr_cancel, exc.value.hresult, elapsed

        hr_cancel, hr_finish, elapsed = await cli.run(client)
        assert hr_cancel == hr.S_OK
        assert hr_finish == hr.RPC_E_CALL_CANCELED
        assert elapsed >= grace * 0.9
        assert "Ignore:done" not in log  # the server is still at work
        release.Signal()
        assert await done.Wait(0, INFINITE) == hr.S_OK
        await drain(rt, srv, cli)

    assert log == [("Ignore:saw", hr.RPC_E_CALL_CANCELED), "Ignore:done"]
    (dropped,) = events_for(events, "call.reply_dropped", "Ignore")
    assert dropped["hresult"] == hr.S_OK  # the server did its work; only the reply is lost
    assert [e["stage"] for e in events_for(events, "call.cancelled", "Ignore")] == ["running"]


@pytest.mark.deterministic_only
@pytest.mark.asyncio
async def test_long_grace_period(rt: comsim.Runtime) -> None:  # R28
    """Virtual time: Cancel(3600) waits exactly its hour for a server that ignores it."""
    _srv, cli, proxy, _log = await setup(rt, CoopWorker)
    started, saw, release, done = (comsim.ManualResetEvent() for _ in range(4))
    loop = asyncio.get_running_loop()

    async def client() -> tuple[Any, ...]:
        call = new_call(proxy)
        call.Begin_Ignore(started, saw, release, done, False)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        t0 = loop.time()
        hr_cancel = await cancel.Cancel(3600)
        elapsed = loop.time() - t0
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Ignore()
        return hr_cancel, elapsed, exc.value.hresult

    hr_cancel, elapsed, hr_finish = await cli.run(client)
    assert hr_cancel == hr.S_OK
    assert elapsed == pytest.approx(3600, abs=0.1)
    assert hr_finish == hr.RPC_E_CALL_CANCELED
    release.Signal()
    await done.Wait(0, INFINITE)


@pytest.mark.deterministic_only
@pytest.mark.parametrize("seconds", [-1, NO_LIMIT])
@pytest.mark.asyncio
async def test_no_limit_waits_for_a_very_late_reply(rt: comsim.Runtime,
                                                    seconds: int) -> None:  # R28
    """-1 and RPC_C_CANCEL_INFINITE_TIMEOUT mean no limit: a reply a (virtual) week late still
    completes the call."""
    _srv, cli, proxy, log = await setup(rt, CoopWorker)
    started = comsim.ManualResetEvent()
    loop = asyncio.get_running_loop()
    week = 7 * 24 * 3600.0

    async def client() -> tuple[Any, ...]:
        call = new_call(proxy)
        call.Begin_Linger(started, week)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        t0 = loop.time()
        hr_cancel = await cancel.Cancel(seconds)
        return hr_cancel, loop.time() - t0, await call.Finish_Linger()

    hr_cancel, elapsed, result = await cli.run(client)
    assert (hr_cancel, result) == (hr.RPC_E_CALL_COMPLETE, "lingered")
    assert elapsed >= week
    assert log == ["Linger:done"]


@pytest.mark.parametrize("seconds", [-1, NO_LIMIT])
@pytest.mark.asyncio
async def test_no_limit_waits_for_the_reply(rt: comsim.Runtime, seconds: int) -> None:  # R28
    """Cancel(-1) / Cancel(RPC_C_CANCEL_INFINITE_TIMEOUT) returns only with the reply: the
    server sees the cancel, the test lets it finish normally, Cancel gives
    RPC_E_CALL_COMPLETE."""
    _srv, cli, proxy, _log = await setup(rt, CoopWorker)
    started, saw, release, done = (comsim.ManualResetEvent() for _ in range(4))

    async def client() -> tuple[Any, ...]:
        call = new_call(proxy)
        call.Begin_Ignore(started, saw, release, done, False)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        hr_cancel = await cancel.Cancel(seconds)
        return hr_cancel, await call.Finish_Ignore()

    task = asyncio.ensure_future(cli.run(client))
    assert await saw.Wait(0, INFINITE) == hr.S_OK
    assert not task.done()
    release.Signal()
    assert await task == (hr.RPC_E_CALL_COMPLETE, "late")


@pytest.mark.parametrize("seconds", [-5, -2, -0.5])
@pytest.mark.asyncio
async def test_negative_timeout_is_invalid(rt: comsim.Runtime, seconds: float) -> None:  # R28
    _srv, cli, proxy, _log = await setup(rt)

    async def client() -> None:
        call = new_call(proxy)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        with pytest.raises(comsim.COMError) as exc:
            await cancel.Cancel(seconds)
        assert exc.value.hresult == hr.E_INVALIDARG
        call.Begin_Add(1, 1)
        with pytest.raises(comsim.COMError) as exc:
            await cancel.Cancel(seconds)
        assert exc.value.hresult == hr.E_INVALIDARG
        # nothing was cancelled
        assert cancel.TestCancel() in (hr.RPC_S_CALLPENDING, hr.RPC_E_CALL_COMPLETE)
        assert await call.Finish_Add() == 2

    await cli.run(client)


@pytest.mark.asyncio
async def test_test_cancel_through_a_call(rt: comsim.Runtime) -> None:  # R28
    _srv, cli, proxy, _log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> list[int]:
        call = new_call(proxy)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        sync = call.QueryInterface(comsim.ISynchronize)
        seen = [cancel.TestCancel()]  # idle
        call.Begin_Block(started, release, done)
        seen.append(cancel.TestCancel())  # pending
        await started.Wait(0, INFINITE)
        seen.append(cancel.TestCancel())  # pending, running
        await cancel.Cancel(0)
        seen.append(cancel.TestCancel())  # cancelled
        await done.Wait(0, INFINITE)  # the interrupted server has answered by now...
        await proxy.Ping()  # ...and its late reply has been taken in (and dropped)
        seen.append(cancel.TestCancel())  # still cancelled until Finish_
        with pytest.raises(comsim.COMError):
            await call.Finish_Block()
        seen.append(cancel.TestCancel())  # idle again
        call.Begin_Add(1, 2)
        await sync.Wait(0, INFINITE)
        seen.append(cancel.TestCancel())  # completed, not yet finished
        assert await call.Finish_Add() == 3
        seen.append(cancel.TestCancel())  # after completion
        return seen

    assert await cli.run(client) == [
        hr.RPC_E_CALL_COMPLETE,
        hr.RPC_S_CALLPENDING,
        hr.RPC_S_CALLPENDING,
        hr.RPC_E_CALL_CANCELED,
        hr.RPC_E_CALL_CANCELED,
        hr.RPC_E_CALL_COMPLETE,
        hr.RPC_E_CALL_COMPLETE,
        hr.RPC_E_CALL_COMPLETE,
    ]


@pytest.mark.asyncio
async def test_begin_after_cancel_before_finish(rt: comsim.Runtime) -> None:  # R28 R21 R27
    """The seed rule: until Finish_ has cleaned up after a cancel, Begin_ fails with
    RPC_E_CALL_PENDING; after Finish_ the call object begins again."""
    _srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> None:
        call = new_call(proxy)
        call.Begin_Block(started, release, done)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        assert await cancel.Cancel(0) == hr.S_OK
        cancel.Release()
        for begin in (lambda: call.Begin_Add(1, 2), lambda: call.Begin_Block(
                started, release, done)):
            with pytest.raises(comsim.COMError) as exc:
                begin()
            assert exc.value.hresult == hr.RPC_E_CALL_PENDING
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Block()
        assert exc.value.hresult == hr.RPC_E_CALL_CANCELED
        assert call.Begin_Add(1, 2) == hr.S_OK
        assert await call.Finish_Add() == 3

    await cli.run(client)
    assert ("Add", 1, 2) in log


# ================================================================================ R30
@pytest.mark.asyncio
async def test_co_test_cancel_in_method_and_spawned_task(rt: comsim.Runtime) -> None:  # R30
    _srv, cli, proxy, log = await setup(rt, CoopWorker)
    started = comsim.ManualResetEvent()

    async def client() -> tuple[Any, ...]:
        call = new_call(proxy)
        call.Begin_Spawn(started)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        hr_cancel = await cancel.Cancel(30)  # the method acknowledges when its task has seen it
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Spawn()
        return hr_cancel, exc.value.hresult

    assert await cli.run(client) == (hr.S_OK, hr.RPC_E_CALL_CANCELED)
    assert log == [
        ("method:before", hr.RPC_S_CALLPENDING),
        ("child:before", hr.RPC_S_CALLPENDING),
        ("child:after", hr.RPC_E_CALL_CANCELED),
        ("method:after", hr.RPC_E_CALL_CANCELED),
    ]


@pytest.mark.asyncio
async def test_co_test_cancel_outside_incoming_call(rt: comsim.Runtime) -> None:  # R30
    srv, cli, proxy, _log = await setup(rt)

    async def at_home() -> tuple[int, int]:
        obj = Worker([])
        # Apartment.run code, and a direct call on an object of the same apartment
        return comsim.CoTestCancel(), await obj.Probe()

    assert await srv.run(at_home) == (hr.RPC_E_CALL_COMPLETE, hr.RPC_E_CALL_COMPLETE)

    async def through_proxy() -> tuple[int, int]:
        return comsim.CoTestCancel(), await proxy.Probe()

    # the client's own unit handles no incoming call; the server method does
    assert await cli.run(through_proxy) == (hr.RPC_E_CALL_COMPLETE, hr.RPC_S_CALLPENDING)


@pytest.mark.parametrize("seconds", [0, 30])
@pytest.mark.asyncio
async def test_interrupt_shielded_work_runs_to_its_end(rt: comsim.Runtime,
                                                       seconds: int) -> None:  # R30 R28
    """Interrupt policy: work inside CancelScope(shield=True) runs to its end; the method then
    returns normally and sends a success reply -- taken as the result within the grace period
    (Cancel(30)), dropped after Cancel(0) ended the call."""
    srv, cli, proxy, log = await setup(rt)
    started, done = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    with comsim.testing.capture_trace() as events:
        async def client() -> tuple[Any, ...]:
            call = new_call(proxy)
            call.Begin_Shielded(started, done, False)
            await started.Wait(0, INFINITE)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            hr_cancel = await cancel.Cancel(seconds)
            try:
                return hr_cancel, await call.Finish_Shielded()
            except comsim.COMError as exc:
                return hr_cancel, exc.hresult

        outcome = await cli.run(client)
        assert await done.Wait(0, INFINITE) == hr.S_OK
        await drain(rt, srv, cli)

    assert log == [("Shielded:work", hr.RPC_E_CALL_CANCELED)]
    (returned,) = events_for(events, "call.returned", "Shielded")
    assert returned["hresult"] == hr.S_OK
    if seconds:
        assert outcome == (hr.RPC_E_CALL_COMPLETE, "shielded")
        assert events_for(events, "call.reply_dropped", "Shielded") == []
    else:
        assert outcome == (hr.S_OK, hr.RPC_E_CALL_CANCELED)
        (dropped,) = events_for(events, "call.reply_dropped", "Shielded")
        assert dropped["hresult"] == hr.S_OK


@pytest.mark.asyncio
async def test_interrupt_reaches_the_method_after_its_shield(rt: comsim.Runtime) -> None:  # R30
    _srv, cli, proxy, log = await setup(rt)
    started, done = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def client() -> tuple[Any, ...]:
        call = new_call(proxy)
        call.Begin_Shielded(started, done, True)
        await started.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        hr_cancel = await cancel.Cancel(30)
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Shielded()
        return hr_cancel, exc.value.hresult

    assert await cli.run(client) == (hr.S_OK, hr.RPC_E_CALL_CANCELED)
    assert log == [("Shielded:work", hr.RPC_E_CALL_CANCELED),
                   "Shielded:interrupted after the shield"]


@pytest.mark.asyncio
async def test_cooperative_method_is_not_interrupted(rt: comsim.Runtime) -> None:  # R30 R29
    """With "cooperative" only CoTestCancel tells: a method waiting on an event is not
    interrupted, finishes its work, and its success reply is dropped."""
    srv, cli, proxy, log = await setup(rt, CoopWorker)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    with comsim.testing.capture_trace() as events:
        async def client() -> tuple[Any, ...]:
            call = new_call(proxy)
            call.Begin_Block(started, release, done)
            await started.Wait(0, INFINITE)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            hr_cancel = await cancel.Cancel(0)
            with pytest.raises(comsim.COMError) as exc:
                await call.Finish_Block()
            return hr_cancel, exc.value.hresult

        assert await cli.run(client) == (hr.S_OK, hr.RPC_E_CALL_CANCELED)
        await drain(rt, srv)  # the cancel has reached the running method...
        assert log == ["Block:start"]  # ...which goes on
        release.Signal()
        assert await done.Wait(0, INFINITE) == hr.S_OK
        await drain(rt, srv, cli)

    assert log == ["Block:start", "Block:done"]
    (dropped,) = events_for(events, "call.reply_dropped", "Block")
    assert dropped["hresult"] == hr.S_OK
    assert [e["stage"] for e in events_for(events, "call.cancelled", "Block")] == ["running"]


# ================================================================================ R31
@pytest.mark.asyncio
async def test_enable_disable_count_per_thread(rt: comsim.Runtime) -> None:  # R31
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def first() -> tuple[Any, ...]:
        return (comsim.current_thread_id(), comsim.CoDisableCallCancellation(),
                comsim.CoEnableCallCancellation(), comsim.CoEnableCallCancellation())

    async def other() -> tuple[Any, ...]:
        return comsim.current_thread_id(), comsim.CoDisableCallCancellation()

    async def later() -> tuple[Any, ...]:
        return (comsim.current_thread_id(), comsim.CoDisableCallCancellation(),
                comsim.CoDisableCallCancellation(), comsim.CoDisableCallCancellation())

    tid_a, *got = await a.run(first)
    assert got == [hr.CO_E_CANCEL_DISABLED, hr.S_OK, hr.S_OK]
    tid_b, got_b = await b.run(other)
    assert tid_b != tid_a
    assert got_b == hr.CO_E_CANCEL_DISABLED  # b's count is its own
    tid_a2, *got = await a.run(later)
    assert tid_a2 == tid_a  # an STA is one simulated thread for its whole life
    assert got == [hr.S_OK, hr.S_OK, hr.CO_E_CANCEL_DISABLED]

    async def enable() -> tuple[int, int]:
        return comsim.current_thread_id(), comsim.CoEnableCallCancellation()

    async def disable() -> tuple[int, int]:
        return comsim.current_thread_id(), comsim.CoDisableCallCancellation()

    # in the MTA every Apartment.run is a new simulated thread with its own count
    (t1, e1), (t2, d2) = await rt.mta.run(enable), await rt.mta.run(disable)
    assert t1 != t2
    assert (e1, d2) == (hr.S_OK, hr.CO_E_CANCEL_DISABLED)


async def _cancellable_call(proxy: Any, tids: list[int], started: Any, release: Any,
                            done: Any, enable: bool = True) -> Any:
    """A client unit: make its thread's calls cancellable, hand its thread id over, call."""
    if enable:
        assert comsim.CoEnableCallCancellation() == hr.S_OK
    tids.append(comsim.current_thread_id())
    try:
        return await proxy.Block(started, release, done)
    except comsim.COMError as exc:
        return exc.hresult


async def _cancellable_ignore(proxy: Any, tids: list[int], started: Any, saw: Any,
                              release: Any, done: Any, acknowledge: bool = False) -> Any:
    """A client unit: make its thread's calls cancellable, hand its thread id over, call the
    cooperative ``Ignore``; gives its result or HRESULT."""
    comsim.CoEnableCallCancellation()
    tids.append(comsim.current_thread_id())
    try:
        return await proxy.Ignore(started, saw, release, done, acknowledge)
    except comsim.COMError as exc:
        return exc.hresult


@pytest.mark.parametrize("seconds", [0, 30])
@pytest.mark.asyncio
async def test_co_cancel_call_from_another_apartment(rt: comsim.Runtime,
                                                     seconds: int) -> None:  # R31 R29
    srv, cli, proxy, log = await setup(rt)
    other = await rt.create_sta("other")
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))
    tids: list[int] = []

    with comsim.testing.capture_trace() as events:
        caller = asyncio.ensure_future(
            cli.run(_cancellable_call, proxy, tids, started, release, done))

        async def canceller() -> int:
            await started.Wait(0, INFINITE)
            return await comsim.CoCancelCall(tids[0], seconds)

        assert await other.run(canceller) == hr.S_OK
        assert await caller == hr.RPC_E_CALL_CANCELED
        assert await done.Wait(0, INFINITE) == hr.S_OK
        await drain(rt, srv, cli)

    assert log == ["Block:start", "Block:interrupted"]
    assert [e["stage"] for e in events_for(events, "call.cancelled", "Block")] == ["running"]


@pytest.mark.asyncio
async def test_co_cancel_call_current_thread(rt: comsim.Runtime) -> None:  # R31
    """CoCancelCall(0, ...): the caller's own thread -- here another task of the same unit."""
    _srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> list[Any]:
        comsim.CoEnableCallCancellation()
        got: list[Any] = []

        async def caller() -> None:
            try:
                got.append(await proxy.Block(started, release, done))
            except comsim.COMError as exc:
                got.append(exc.hresult)

        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await started.Wait(0, INFINITE)
            got.append(await comsim.CoCancelCall(0, 0))
        return got

    assert await cli.run(client) == [hr.S_OK, hr.RPC_E_CALL_CANCELED]
    assert await done.Wait(0, INFINITE) == hr.S_OK
    assert "Block:interrupted" in log


class INested(comsim.Interface):
    async def Inner(self, started: Any) -> str: ...


class Nested(comsim.CoClass, INested):
    """Lives in the client STA; runs nested there and calls out again (to `srv2`)."""

    def __init__(self, target: Any, release: Any, done: Any) -> None:
        super().__init__()
        self.target, self.release, self.done = target, release, done

    async def Inner(self, started: Any) -> str:
        try:
            return str(await self.target.Block(started, self.release, self.done))
        except comsim.COMError as exc:
            return f"inner call failed: {hr.name(exc.hresult)}"


@pytest.mark.asyncio
async def test_co_cancel_call_cancels_the_innermost_call(rt: comsim.Runtime) -> None:  # R31
    """The client thread waits in an outer call (to srv.Relay) and, nested inside it, in an
    inner one (to srv2.Block). CoCancelCall cancels the inner one only."""
    _srv, cli, proxy, _log = await setup(rt)
    srv2 = await rt.create_sta("srv2")
    other = await rt.create_sta("other")
    log2: list[Any] = []
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    async def make2() -> Any:
        return comsim.marshal_interface(Worker(log2), IWork)

    stream2 = await srv2.run(make2)
    tids: list[int] = []

    async def client() -> str:
        comsim.CoEnableCallCancellation()
        tids.append(comsim.current_thread_id())
        nested = Nested(comsim.unmarshal_interface(stream2), release, done)
        return str(await proxy.Relay(nested, started))

    caller = asyncio.ensure_future(cli.run(client))

    async def canceller() -> int:
        await started.Wait(0, INFINITE)
        return await comsim.CoCancelCall(tids[0], 0)

    assert await other.run(canceller) == hr.S_OK
    assert await caller == "inner call failed: RPC_E_CALL_CANCELED"
    assert await done.Wait(0, INFINITE) == hr.S_OK
    assert log2 == ["Block:start", "Block:interrupted"]


@pytest.mark.asyncio
async def test_co_cancel_call_without_a_pending_call(rt: comsim.Runtime) -> None:  # R31
    _srv, cli, proxy, _log = await setup(rt)
    other = await rt.create_sta("other")

    async def idle_thread() -> int:
        comsim.CoEnableCallCancellation()
        assert await proxy.Ping() == "pong"  # a call that has ended is no longer pending
        return comsim.current_thread_id()

    tid = await cli.run(idle_thread)

    async def canceller() -> tuple[int, int]:
        return await comsim.CoCancelCall(tid, 0), await comsim.CoCancelCall(987_654_321, 0)

    assert await other.run(canceller) == (hr.E_NOINTERFACE, hr.E_NOINTERFACE)

    async def negative() -> None:
        with pytest.raises(comsim.COMError) as exc:
            await comsim.CoCancelCall(tid, -5)
        assert exc.value.hresult == hr.E_INVALIDARG

    await other.run(negative)


@pytest.mark.asyncio
async def test_co_cancel_call_on_a_call_made_while_disabled(rt: comsim.Runtime) -> None:  # R31
    _srv, cli, proxy, log = await setup(rt)
    other = await rt.create_sta("other")
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))
    tids: list[int] = []

    caller = asyncio.ensure_future(
        cli.run(_cancellable_call, proxy, tids, started, release, done, False))

    async def canceller() -> int:
        await started.Wait(0, INFINITE)
        result = await comsim.CoCancelCall(tids[0], 0)
        release.Signal()
        return result

    assert await other.run(canceller) == hr.CO_E_CANCEL_DISABLED
    assert await caller == "released"  # the call went on as if nothing happened
    assert log == ["Block:start", "Block:done"]


@pytest.mark.parametrize("enabled_when_made", [True, False], ids=["enabled", "disabled"])
@pytest.mark.asyncio
async def test_cancellable_by_the_count_when_made(rt: comsim.Runtime,
                                                  enabled_when_made: bool) -> None:  # R31
    """Changing the thread's count while the call is pending does not change the call."""
    _srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> list[Any]:
        if enabled_when_made:
            comsim.CoEnableCallCancellation()
        got: list[Any] = []

        async def caller() -> None:
            try:
                got.append(await proxy.Block(started, release, done))
            except comsim.COMError as exc:
                got.append(exc.hresult)

        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await started.Wait(0, INFINITE)
            # flip the count of this thread after the call was made
            if enabled_when_made:
                assert comsim.CoDisableCallCancellation() == hr.S_OK
            else:
                assert comsim.CoEnableCallCancellation() == hr.S_OK
            got.append(await comsim.CoCancelCall(0, 0))
            if not enabled_when_made:
                release.Signal()
        return got

    if enabled_when_made:
        assert await cli.run(client) == [hr.S_OK, hr.RPC_E_CALL_CANCELED]
    else:
        assert await cli.run(client) == [hr.CO_E_CANCEL_DISABLED, "released"]
    assert await done.Wait(0, INFINITE) == hr.S_OK
    assert log[0] == "Block:start" and len(log) == 2
    assert log[1] == ("Block:interrupted" if enabled_when_made else "Block:done")


@pytest.mark.asyncio
async def test_co_cancel_call_already_cancelled(rt: comsim.Runtime) -> None:  # R31 R28
    _srv, cli, proxy, log = await setup(rt, CoopWorker)
    c1 = await rt.create_sta("c1")
    c2 = await rt.create_sta("c2")
    started, saw, release, done = (comsim.ManualResetEvent() for _ in range(4))
    tids: list[int] = []

    caller = asyncio.ensure_future(
        cli.run(_cancellable_ignore, proxy, tids, started, saw, release, done, True))

    async def first() -> int:
        await started.Wait(0, INFINITE)
        return await comsim.CoCancelCall(tids[0], NO_LIMIT)

    first_task = asyncio.ensure_future(c1.run(first))

    async def second() -> int:
        await saw.Wait(0, INFINITE)  # the first cancel reached the server; it waits for a reply
        result = await comsim.CoCancelCall(tids[0], 0)
        release.Signal()
        return result

    assert await c2.run(second) == hr.RPC_E_CALL_CANCELED
    assert await first_task == hr.S_OK
    assert await caller == hr.RPC_E_CALL_CANCELED
    assert log == [("Ignore:saw", hr.RPC_E_CALL_CANCELED), "Ignore:done"]


# ================================================================================ R32
@pytest.mark.parametrize("cancellable", [True, False], ids=["cancellable", "not-cancellable"])
@pytest.mark.asyncio
async def test_cancelling_the_task_awaiting_a_sync_call(rt: comsim.Runtime,
                                                        cancellable: bool) -> None:  # R32 R31
    srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    with comsim.testing.capture_trace() as events:
        async def client() -> list[Any]:
            if cancellable:
                comsim.CoEnableCallCancellation()
            got: list[Any] = []

            async def caller() -> None:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    got.append(await proxy.Block(started, release, done))
                got.append(("released", scope.cancelled_caught))

            scopes: list[anyio.CancelScope] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(caller)
                await started.Wait(0, INFINITE)
                scopes[0].cancel()
            return got

        # the caller is released without waiting for the server
        assert await cli.run(client) == [("released", True)]
        if cancellable:
            assert await done.Wait(0, INFINITE) == hr.S_OK
        else:
            assert log == ["Block:start"]  # the server runs on
            release.Signal()
            assert await done.Wait(0, INFINITE) == hr.S_OK
        await drain(rt, srv, cli)

    (dropped,) = events_for(events, "call.reply_dropped", "Block")
    if cancellable:
        assert log == ["Block:start", "Block:interrupted"]
        assert [e["stage"] for e in events_for(events, "call.cancelled", "Block")] == ["running"]
        assert dropped["hresult"] == hr.RPC_E_CALL_CANCELED
    else:
        assert log == ["Block:start", "Block:done"]
        assert events_for(events, "call.cancel_requested", "Block") == []
        assert dropped["hresult"] == hr.S_OK


@pytest.mark.asyncio
async def test_cancelling_the_task_awaiting_a_sync_call_cooperative(
        rt: comsim.Runtime) -> None:  # R32 R30
    _srv, cli, proxy, log = await setup(rt, CoopWorker)
    started, done = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def client() -> bool:
        comsim.CoEnableCallCancellation()
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def caller() -> None:
                with scope:
                    await proxy.Acknowledge(started, done)

            tg.start_soon(caller)
            await started.Wait(0, INFINITE)
            scope.cancel()
        return scope.cancelled_caught

    assert await cli.run(client) is True
    assert await done.Wait(0, INFINITE) == hr.S_OK
    assert log == [("Acknowledge:before", hr.RPC_S_CALLPENDING),
                   ("Acknowledge:after", hr.RPC_E_CALL_CANCELED)]


@pytest.mark.asyncio
async def test_cancelling_the_task_awaiting_finish(rt: comsim.Runtime) -> None:  # R32 R22
    srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    with comsim.testing.capture_trace() as events:
        async def client() -> tuple[Any, ...]:
            call = new_call(proxy)
            call.Begin_Block(started, release, done)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            scope = anyio.CancelScope()

            async def finisher() -> None:
                with scope:
                    await call.Finish_Block()

            async with anyio.create_task_group() as tg:
                tg.start_soon(finisher)
                await started.Wait(0, INFINITE)
                scope.cancel()
            hr_test = cancel.TestCancel()
            # the call object is at once ready for a new call
            assert call.Begin_Add(2, 3) == hr.S_OK
            return scope.cancelled_caught, hr_test, await call.Finish_Add()

        assert await cli.run(client) == (True, hr.RPC_E_CALL_COMPLETE, 5)
        assert await done.Wait(0, INFINITE) == hr.S_OK
        await drain(rt, srv, cli)

    assert "Block:interrupted" in log and "Block:done" not in log
    assert len(events_for(events, "call.cancel_requested", "Block")) == 1
    assert [e["stage"] for e in events_for(events, "call.cancelled", "Block")] == ["running"]
    assert len(events_for(events, "call.reply_dropped", "Block")) == 1


@pytest.mark.asyncio
async def test_cancelling_the_task_awaiting_wait(rt: comsim.Runtime) -> None:  # R32 R23
    """Cancelling a task in ISynchronize.Wait ends the wait only: the call goes on."""
    _srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> tuple[Any, ...]:
        call = new_call(proxy)
        call.Begin_Block(started, release, done)
        sync = call.QueryInterface(comsim.ISynchronize)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        scope = anyio.CancelScope()

        async def waiter() -> None:
            with scope:
                await sync.Wait(0, INFINITE)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await started.Wait(0, INFINITE)
            scope.cancel()
        hr_test = cancel.TestCancel()
        release.Signal()
        return scope.cancelled_caught, hr_test, await call.Finish_Block()

    assert await cli.run(client) == (True, hr.RPC_S_CALLPENDING, "released")
    assert log == ["Block:start", "Block:done"]


@pytest.mark.asyncio
async def test_cancelling_the_task_awaiting_cancel(rt: comsim.Runtime) -> None:  # R32 R28
    """A task waiting in Cancel(no limit) is cancelled: the call ends cancelled at once."""
    srv, cli, proxy, log = await setup(rt, CoopWorker)
    started, saw, release, done = (comsim.ManualResetEvent() for _ in range(4))

    with comsim.testing.capture_trace() as events:
        async def client() -> tuple[Any, ...]:
            call = new_call(proxy)
            call.Begin_Ignore(started, saw, release, done, False)
            sync = call.QueryInterface(comsim.ISynchronize)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            scope = anyio.CancelScope()
            got: list[Any] = []

            async def canceller() -> None:
                with scope:
                    got.append(await cancel.Cancel(NO_LIMIT))

            await started.Wait(0, INFINITE)
            async with anyio.create_task_group() as tg:
                tg.start_soon(canceller)
                await saw.Wait(0, INFINITE)  # the cancel reached the server, which ignores it
                scope.cancel()
            ended = await sync.Wait(0, 0)  # the call has ended: its event is set
            hr_test = cancel.TestCancel()
            with pytest.raises(comsim.COMError) as exc:
                await call.Finish_Ignore()
            return got, scope.cancelled_caught, ended, hr_test, exc.value.hresult

        assert await cli.run(client) == ([], True, hr.S_OK, hr.RPC_E_CALL_CANCELED,
                                         hr.RPC_E_CALL_CANCELED)
        assert "Ignore:done" not in log  # the server had not answered
        release.Signal()
        assert await done.Wait(0, INFINITE) == hr.S_OK
        await drain(rt, srv, cli)

    (dropped,) = events_for(events, "call.reply_dropped", "Ignore")
    assert dropped["hresult"] == hr.S_OK
    assert [e["stage"] for e in events_for(events, "call.cancelled", "Ignore")] == ["running"]


@pytest.mark.asyncio
async def test_cancelling_the_caller_of_apartment_run(rt: comsim.Runtime) -> None:  # R32 R2
    """Cancelling the caller of Apartment.run cancels the unit and waits for it to end."""
    sta = await rt.create_sta("sta")
    started = comsim.ManualResetEvent()
    log: list[str] = []

    async def unit() -> None:
        try:
            started.Signal()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)  # clean-up that takes a while
            log.append("unit ended")

    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def caller() -> None:
            with scope:
                await sta.run(unit)
            log.append("caller released")

        tg.start_soon(caller)
        await started.Wait(0, INFINITE)
        scope.cancel()
    assert log == ["unit ended", "caller released"]


@pytest.mark.parametrize("where", ["same apartment", "another apartment"])
@pytest.mark.asyncio
async def test_cancelling_the_task_awaiting_co_cancel_call(rt: comsim.Runtime,
                                                           where: str) -> None:  # R32 R31 R28
    """A task waiting in CoCancelCall(no limit) is cancelled: the call ends cancelled at once,
    as for a task waiting in Cancel, whichever apartment the canceller is in."""
    _srv, cli, proxy, log = await setup(rt, CoopWorker)
    other = await rt.create_sta("other")
    started, saw, release, done = (comsim.ManualResetEvent() for _ in range(4))
    tids: list[int] = []
    scope = anyio.CancelScope()
    got: list[Any] = []

    async def canceller() -> None:
        with scope:
            got.append(await comsim.CoCancelCall(tids[0], NO_LIMIT))

    async def cancel_then_give_up() -> bool:
        await started.Wait(0, INFINITE)
        async with anyio.create_task_group() as tg:
            tg.start_soon(canceller)
            await saw.Wait(0, INFINITE)  # the cancel reached the server, which ignores it
            scope.cancel()
        return scope.cancelled_caught

    if where == "same apartment":
        async def unit() -> tuple[Any, ...]:
            async with anyio.create_task_group() as tg:
                outcome: list[Any] = []

                async def call() -> None:
                    outcome.append(await _cancellable_ignore(proxy, tids, started, saw,
                                                             release, done))

                tg.start_soon(call)
                caught = await cancel_then_give_up()
            return outcome[0], caught

        result, caught = await cli.run(unit)
    else:
        caller = asyncio.ensure_future(
            cli.run(_cancellable_ignore, proxy, tids, started, saw, release, done))
        caught = await other.run(cancel_then_give_up)
        result = await caller
    assert (result, caught, got) == (hr.RPC_E_CALL_CANCELED, True, [])
    assert "Ignore:done" not in log  # the call ended before the server answered
    release.Signal()
    assert await done.Wait(0, INFINITE) == hr.S_OK


@pytest.mark.asyncio
async def test_co_cancel_call_as_the_callers_apartment_shuts_down(
        rt: comsim.Runtime) -> None:  # R31 R18 R28
    """CoCancelCall reaching a call whose apartment has begun to shut down waits for its
    teardown, as a Cancel from another thread does: the teardown abandons the call, so the
    answer is RPC_E_CALL_COMPLETE and the server is never told."""
    _srv, cli, proxy, log = await setup(rt)
    started, release, done = (comsim.ManualResetEvent() for _ in range(3))
    tids: list[int] = []

    caller = asyncio.ensure_future(
        cli.run(_cancellable_call, proxy, tids, started, release, done))
    assert await started.Wait(0, INFINITE) == hr.S_OK
    got: list[Any] = []

    async def cancel() -> None:
        got.append(await comsim.CoCancelCall(tids[0], NO_LIMIT))
        got.append(cli.alive)

    with comsim.testing.capture_trace() as events:
        async with anyio.create_task_group() as tg:
            tg.start_soon(cli.shutdown)  # shutdown begins: the client takes no message in
            tg.start_soon(cancel)
    # on real threads the teardown may have ended, the call gone from its thread's stack,
    # before CoCancelCall looks: then it finds no call (E_NOINTERFACE)
    answers = {hr.RPC_E_CALL_COMPLETE} if rt.deterministic else {hr.RPC_E_CALL_COMPLETE,
                                                                   hr.E_NOINTERFACE}
    assert got[0] in answers
    assert got[1] is False  # it answered once the client's teardown had begun (R18)
    with pytest.raises(comsim.COMError) as exc:  # the teardown ended the unit (R18)
        await caller
    assert exc.value.hresult == hr.RPC_E_DISCONNECTED
    assert events_for(events, "call.cancel_requested", "Block") == []
    assert log == ["Block:start"]  # the server was not interrupted: it was never told
    release.Signal()
    assert await done.Wait(0, INFINITE) == hr.S_OK
    assert log == ["Block:start", "Block:done"]


@pytest.mark.deterministic_only
@pytest.mark.asyncio
async def test_co_cancel_call_given_up_before_its_cancel_reached_the_client(
        rt: comsim.Runtime) -> None:  # R32 R31 R28
    """The task awaiting CoCancelCall(no limit) is cancelled before the cancel's step reaches
    the caller's apartment, and the step that ends the grace period overtakes it (the
    deterministic pump may deliver them so): the call still ends cancelled at once, as
    Cancel(0) would end it, not after the server's answer."""
    _srv, cli, proxy, log = await setup(rt, CoopWorker)
    other = await rt.create_sta("other")
    started, saw, release, done = (comsim.ManualResetEvent() for _ in range(4))
    tids: list[int] = []
    slow: list[float] = []
    rt.set_latency(lambda rng: slow.pop() if slow else 0.0, target="cli")

    async def canceller() -> str:
        await started.Wait(0, INFINITE)
        with anyio.move_on_after(0.5):
            slow.append(1.0)  # the cancel's step takes 1 s to reach "cli"; the next, none
            await comsim.CoCancelCall(tids[0], NO_LIMIT)
            return "answered"
        return "gave up"

    caller = asyncio.ensure_future(
        cli.run(_cancellable_ignore, proxy, tids, started, saw, release, done))
    assert await other.run(canceller) == "gave up"
    assert await caller == hr.RPC_E_CALL_CANCELED  # before the server answers
    assert slow == []  # the cancel's step was the one delayed
    assert await saw.Wait(0, INFINITE) == hr.S_OK  # the server was told (R30)
    release.Signal()
    assert await done.Wait(0, INFINITE) == hr.S_OK
    assert log == [("Ignore:saw", hr.RPC_E_CALL_CANCELED), "Ignore:done"]
