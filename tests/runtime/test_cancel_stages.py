"""R29: the three stages in which a cancelled call ends -- `queued`, `running`, `finished`.

Each stage is forced with events (no sleeps that wait for another task) and checked three ways:
what the client saw (``Cancel`` and ``Finish_``), what the server did (its log), and the trace
(``call.cancelled`` with ``stage``; ``call.reply_dropped`` for a reply that came too late).
Each stage runs 200 times in one test; on the deterministic runtime every iteration gets its own
seed, so 200 interleavings are explored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr

from .. import helpers
from ..helpers import drain, noop, shut, until_cancelled

N = 200
INFINITE = comsim.INFINITE


class IWork(comsim.Interface):
    async def Block(self, started: Any, release: Any, done: Any) -> str: ...
    async def Poll(self, started: Any) -> str: ...
    async def Quick(self, tag: int, returning: Any) -> int: ...
    async def Ping(self) -> str: ...


AsyncIWork = comsim.async_interface(IWork)


class Worker(comsim.CoClass, IWork):
    """A server object that writes down what it did; the test reads `log` (Apartment.run passes
    it by reference)."""

    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log

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
            self.log.append("Block:finally")
            done.Signal()  # nothing awaits after this: the reply is sent in the same step

    async def Poll(self, started: Any) -> str:
        """A cooperative server: polls CoTestCancel (R30) and stops itself."""
        self.log.append(("Poll:before", comsim.CoTestCancel()))
        started.Signal()
        await until_cancelled()
        self.log.append(("Poll:after", comsim.CoTestCancel()))
        raise comsim.COMError(hr.RPC_E_CALL_CANCELED, "stopped on request")

    async def Quick(self, tag: int, returning: Any) -> int:
        self.log.append(("Quick", tag))
        if returning is not None:
            returning.Signal()  # nothing awaits after this: the method returns at once
        return tag

    async def Ping(self) -> str:
        self.log.append("Ping")
        return "pong"


class CoopWorker(Worker):
    cancel_policy = "cooperative"


@asynccontextmanager
async def runtimes(rt: comsim.Runtime, kind: str, i: int) -> AsyncIterator[comsim.Runtime]:
    """Threaded: the fixture's runtime, reused. Deterministic: a fresh runtime seeded with `i`."""
    if kind == "threaded":
        yield rt
        return
    async with comsim.Runtime(deterministic=True, seed=i) as r:
        yield r


async def pair(r: comsim.Runtime, i: int, cls: type[Worker]) -> tuple[
        comsim.Apartment, comsim.Apartment, Any, list[Any]]:
    log: list[Any] = []
    p = await helpers.pair(r, lambda: cls(log), IWork, server=f"srv{i}", client=f"cli{i}")
    return p.server, p.client, p.proxy, log


def cancelled_events(events: Any, call_id: int) -> list[str]:
    return [e["stage"] for e in events.events("call.cancelled", call_id=call_id)]


# --------------------------------------------------------------------------------- queued
async def one_queued(r: comsim.Runtime, i: int) -> None:
    srv, cli, proxy, log = await pair(r, i, Worker)
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    busy = comsim.ManualResetEvent()

    async def blocker() -> None:
        busy.Signal()
        # a non-COM await: the STA thread is blocked, no other unit may start (R2)
        await asyncio.wrap_future(gate)

    async def client() -> tuple[Any, ...]:
        call = proxy.QueryInterface(comsim.ICallFactory).CreateCall(AsyncIWork)
        assert call.Begin_Quick(i, None) == hr.S_OK
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        assert cancel.TestCancel() == hr.RPC_S_CALLPENDING
        # never dispatched: S_OK at once, whatever the grace period
        hr_cancel = await cancel.Cancel(0 if i % 2 else comsim.RPC_C_CANCEL_INFINITE_TIMEOUT)
        hr_again = await cancel.Cancel(0)
        hr_test = cancel.TestCancel()
        cancel.Release()
        sync = call.QueryInterface(comsim.ISynchronize)
        hr_wait = await sync.Wait(0, 0)  # the call has ended: its event is set
        sync.Release()
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Quick()
        return hr_cancel, hr_again, hr_test, hr_wait, exc.value.hresult

    async def ping() -> str:
        return str(await proxy.Ping())

    with comsim.testing.capture_trace() as events:
        blocked = asyncio.ensure_future(srv.run(blocker))
        assert await busy.Wait(0, INFINITE) == hr.S_OK
        outcome = await cli.run(client)
        # the server is still blocked: the request was never dispatched
        assert log == []
        gate.set_result(None)
        await blocked
        # units start in arrival order (R2): the dropped request came before this one
        assert await cli.run(ping) == "pong"
        await drain(r, srv, cli)

    assert outcome == (hr.S_OK, hr.RPC_E_CALL_CANCELED, hr.RPC_E_CALL_CANCELED, hr.S_OK,
                       hr.RPC_E_CALL_CANCELED), i
    # the server never ran it
    assert log == ["Ping"], (i, log)
    (sent,) = events.events("call.sent", method="Quick")
    cid = sent["call_id"]
    assert cancelled_events(events, cid) == ["queued"], (i, events)
    assert events.events("call.dispatched", call_id=cid) == []
    assert events.events("call.returned", call_id=cid) == []
    assert events.events("call.reply_dropped", call_id=cid) == []
    await shut(cli, srv)


@pytest.mark.asyncio
async def test_stage_queued(rt: comsim.Runtime, kind: str) -> None:  # R29 R28 R2
    """The server STA is busy with a unit blocked in a non-COM await, so the request waits in
    its queue. Cancel gives S_OK at once; the method never runs, not even later."""
    for i in range(N):
        async with runtimes(rt, kind, i) as r:
            await one_queued(r, i)


# --------------------------------------------------------------------------------- running
async def one_running_interrupt(r: comsim.Runtime, i: int) -> None:
    srv, cli, proxy, log = await pair(r, i, Worker)
    started = comsim.ManualResetEvent()
    release = comsim.ManualResetEvent()  # never signalled
    done = comsim.ManualResetEvent()

    async def client() -> tuple[Any, ...]:
        call = proxy.QueryInterface(comsim.ICallFactory).CreateCall(AsyncIWork)
        call.Begin_Block(started, release, done)
        assert await started.Wait(0, INFINITE) == hr.S_OK
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        hr_cancel = await cancel.Cancel(0)
        cancel.Release()
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Block()
        return hr_cancel, exc.value.hresult

    with comsim.testing.capture_trace() as events:
        outcome = await cli.run(client)
        # the server learns of the cancel after the client has moved on (Cancel(0))
        assert await done.Wait(0, INFINITE) == hr.S_OK
        await drain(r, srv, cli)

    assert outcome == (hr.S_OK, hr.RPC_E_CALL_CANCELED), i
    assert log == ["Block:start", "Block:interrupted", "Block:finally"], (i, log)
    (sent,) = events.events("call.sent", method="Block")
    cid = sent["call_id"]
    assert cancelled_events(events, cid) == ["running"], (i, events)
    (dropped,) = events.events("call.reply_dropped", call_id=cid)
    assert dropped["hresult"] == hr.RPC_E_CALL_CANCELED
    await shut(cli, srv)


@pytest.mark.asyncio
async def test_stage_running_interrupt(rt: comsim.Runtime, kind: str) -> None:  # R29 R30
    """The server method runs (it signalled `started`); Cancel(0) gives S_OK at once; the
    default "interrupt" policy interrupts the method, whose `finally` runs; the method's late
    RPC_E_CALL_CANCELED reply is dropped."""
    for i in range(N):
        async with runtimes(rt, kind, i) as r:
            await one_running_interrupt(r, i)


async def one_running_cooperative(r: comsim.Runtime, i: int) -> None:
    srv, cli, proxy, log = await pair(r, i, CoopWorker)
    started = comsim.ManualResetEvent()

    async def client() -> tuple[Any, ...]:
        call = proxy.QueryInterface(comsim.ICallFactory).CreateCall(AsyncIWork)
        call.Begin_Poll(started)
        assert await started.Wait(0, INFINITE) == hr.S_OK
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        hr_cancel = await cancel.Cancel(0)
        cancel.Release()
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Poll()
        return hr_cancel, exc.value.hresult

    async def ping() -> str:
        return str(await proxy.Ping())

    with comsim.testing.capture_trace() as events:
        outcome = await cli.run(client)
        # Ping runs after Poll has stopped itself (Poll's polling is no COM wait: R2)
        assert await cli.run(ping) == "pong"
        await drain(r, srv, cli)

    assert outcome == (hr.S_OK, hr.RPC_E_CALL_CANCELED), i
    assert log == [("Poll:before", hr.RPC_S_CALLPENDING),
                   ("Poll:after", hr.RPC_E_CALL_CANCELED), "Ping"], (i, log)
    (sent,) = events.events("call.sent", method="Poll")
    cid = sent["call_id"]
    assert cancelled_events(events, cid) == ["running"], (i, events)
    (dropped,) = events.events("call.reply_dropped", call_id=cid)
    assert dropped["hresult"] == hr.RPC_E_CALL_CANCELED
    await shut(cli, srv)


@pytest.mark.asyncio
async def test_stage_running_cooperative(rt: comsim.Runtime, kind: str) -> None:  # R29 R30
    """With "cooperative", the method is not interrupted: CoTestCancel() turns from
    RPC_S_CALLPENDING to RPC_E_CALL_CANCELED and the method stops itself."""
    for i in range(N):
        async with runtimes(rt, kind, i) as r:
            await one_running_cooperative(r, i)


# --------------------------------------------------------------------------------- finished
def _check_finished(i: int, events: Any, log: list[Any], outcome: tuple[Any, ...]) -> None:
    assert outcome == (hr.S_OK, hr.RPC_E_CALL_CANCELED, hr.RPC_E_CALL_CANCELED), i
    # the server's work is done
    assert ("Quick", i) in log, (i, log)
    (sent,) = events.events("call.sent", method="Quick")
    cid = sent["call_id"]
    (returned,) = events.events("call.returned", call_id=cid)
    assert returned["hresult"] == hr.S_OK
    assert cancelled_events(events, cid) == ["finished"], (i, events)
    # only the reply is dropped; it carries the server's success
    (dropped,) = events.events("call.reply_dropped", call_id=cid)
    assert dropped["hresult"] == hr.S_OK
    assert events.events("call.completed", call_id=cid)[0]["hresult"] == hr.RPC_E_CALL_CANCELED


async def one_finished_latency(r: comsim.Runtime, i: int) -> None:
    srv, cli, proxy, log = await pair(r, i, Worker)
    r.set_latency(5.0, source=srv.name, target=cli.name)
    returning = comsim.ManualResetEvent()

    async def client() -> tuple[Any, ...]:
        call = proxy.QueryInterface(comsim.ICallFactory).CreateCall(AsyncIWork)
        call.Begin_Quick(i, returning)
        # the method signals and returns in the same step: it has returned now
        assert await returning.Wait(0, INFINITE) == hr.S_OK
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        hr_cancel = await cancel.Cancel(0)
        hr_test = cancel.TestCancel()
        cancel.Release()
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Quick()
        # a later call's reply comes later still: the dropped one is in by then
        assert await proxy.Ping() == "pong"
        return hr_cancel, hr_test, exc.value.hresult

    with comsim.testing.capture_trace() as events:
        outcome = await cli.run(client)
        await drain(r, srv, cli)

    _check_finished(i, events, log, outcome)


@pytest.mark.deterministic_only
@pytest.mark.asyncio
async def test_stage_finished_latency(kind: str) -> None:  # R29 R28
    """The server method has returned but its reply is still on its way (injected latency, in
    virtual time): the cancel reaches a server that has finished; only the reply is dropped."""
    for i in range(N):
        async with comsim.Runtime(deterministic=True, seed=i) as r:
            await one_finished_latency(r, i)


async def one_finished_blocked_client(r: comsim.Runtime, i: int, srv: comsim.Apartment,
                                      cli: comsim.Apartment, proxy: Any,
                                      log: list[Any]) -> None:
    begun = comsim.ManualResetEvent()
    wake = threading.Event()

    async def client() -> tuple[Any, ...]:
        call = proxy.QueryInterface(comsim.ICallFactory).CreateCall(AsyncIWork)
        call.Begin_Quick(i, None)
        begun.Signal()
        # an OS-level block of the STA thread: no message is taken in meanwhile
        assert wake.wait(10)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        hr_cancel = await cancel.Cancel(0)
        hr_test = cancel.TestCancel()
        cancel.Release()
        with pytest.raises(comsim.COMError) as exc:
            await call.Finish_Quick()
        return hr_cancel, hr_test, exc.value.hresult

    with comsim.testing.capture_trace() as events:
        task = asyncio.ensure_future(cli.run(client))
        assert await begun.Wait(0, INFINITE) == hr.S_OK
        # the request reached the server before this unit did (FIFO), and this unit starts
        # only after the Quick unit has ended and sent its reply
        await srv.run(noop)
        assert ("Quick", i) in log
        wake.set()
        outcome = await task
        await drain(r, srv, cli)

    _check_finished(i, events, log, outcome)


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_stage_finished_blocked_client(rt: comsim.Runtime) -> None:  # R29 R28 R2
    """Threaded: the client STA's thread is blocked (not in a COM wait), so the reply of a
    finished server method sits in its queue. Once the server has provably moved on (a later
    unit ran there), the client thread wakes and cancels before it takes the reply in."""
    srv, cli, proxy, log = await pair(rt, 0, Worker)
    for i in range(N):
        await one_finished_blocked_client(rt, i, srv, cli, proxy, log)
