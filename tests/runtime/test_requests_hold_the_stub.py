"""A request on its way holds its stub (R7, R18): a release of the object's last reference
that comes after the request was sent, from the client's teardown or from another unit of the
client, does not stop the request from running. In COM the release is RemRelease, which an STA
server takes in after the request already queued (Wine: ``ifproxy_release_public_refs``; the
request holds the stub manager from ``GetBuffer`` on)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import comsim
from comsim import hresult as hr

from ..helpers import drain, new_call, noop, pair

pytestmark = pytest.mark.asyncio


class IRec(comsim.Interface):
    async def Note(self, x: int) -> int: ...


class Rec(comsim.CoClass, IRec):
    def __init__(self) -> None:
        super().__init__()
        self.ran: list[int] = []

    async def Note(self, x: int) -> int:
        self.ran.append(x)
        return x


class Held:
    """The server STA, held by a unit of its own in a non-COM wait (R2: no call is taken in)
    until ``open``."""

    async def start(self, apt: comsim.Apartment) -> None:
        held = comsim.ManualResetEvent()

        async def hold() -> None:
            self.loop = asyncio.get_running_loop()
            self.gate = asyncio.Event()
            held.Signal()
            await self.gate.wait()

        self.unit = asyncio.ensure_future(apt.run(hold))
        await held.Wait(0, comsim.INFINITE)

    async def open(self) -> None:
        self.loop.call_soon_threadsafe(self.gate.set)
        await self.unit


async def _call_then_release(p: Any, x: int) -> asyncio.Future[Any]:
    """A unit of the client calls ``Note(x)`` (its request waits at the held server); once it
    is in its COM wait, another unit releases the proxy's last reference (R2, R7). Gives the
    caller's ``run``."""
    sent = comsim.ManualResetEvent()

    async def client() -> int:
        sent.Signal()
        return int(await p.proxy.Note(x))

    caller = asyncio.ensure_future(p.client.run(client))
    await sent.Wait(0, comsim.INFINITE)

    async def release() -> int:  # runs once the caller is in its COM wait (R2)
        return int(p.proxy.Release())

    assert await p.client.run(release) == 0
    return caller


@pytest.mark.parametrize("how", ["begin", "sync"])
async def test_a_request_queued_before_its_client_shuts_down_runs(
        rt: comsim.Runtime, how: str) -> None:
    # R18: the client's outgoing call is abandoned (its reply dropped), but the request sent
    # before the teardown released the client's proxies still runs; before, the release
    # disconnected the stub at once and the request failed unseen (CO_E_OBJNOTCONNECTED)
    p = await pair(rt, Rec, IRec)  # NORMAL: the client's proxy manager is the one reference
    held = Held()
    await held.start(p.server)
    sent = comsim.ManualResetEvent()

    async def client() -> None:
        proxy = p.proxy
        if how == "begin":
            call: Any = new_call(proxy, comsim.async_interface(IRec))
            call.Begin_Note(7)
            sent.Signal()
            return
        sent.Signal()  # (the unit runs)
        await proxy.Note(7)  # waits until the teardown abandons it

    caller = asyncio.ensure_future(p.client.run(client))
    await sent.Wait(0, comsim.INFINITE)
    # a unit after it runs once it is in its call's COM wait, the request sent (R2)
    await p.client.run(noop)
    await p.client.shutdown()
    await held.open()
    await drain(rt, p.server)
    assert p.obj.ran == [7]
    if how == "sync":
        with pytest.raises(comsim.COMError) as err:
            await caller
        assert err.value.hresult == hr.RPC_E_DISCONNECTED
    else:
        await caller


async def test_a_release_while_the_request_is_queued_lets_it_run(rt: comsim.Runtime) -> None:
    # R7: another unit of the client releases the proxy's last reference while the call waits;
    # the request already sent still runs and its caller gets the result, and the stub goes
    # once it is answered (before, the release disconnected it: CO_E_OBJNOTCONNECTED)
    p = await pair(rt, Rec, IRec)
    held = Held()
    await held.start(p.server)
    caller = await _call_then_release(p, 5)
    stub = p.obj.__dict__["_com_stub"]
    assert stub.life.strong == 0 and stub.life.requests == 1
    await held.open()
    assert await caller == 5
    assert p.obj.ran == [5]
    await drain(rt, p.server)
    assert "_com_stub" not in p.obj.__dict__  # it went with the answer (R7)


class RejectOnce(comsim.IMessageFilter):
    """The server's filter rejects the first incoming call, then takes every call; as the
    client's filter it retries at once."""

    def __init__(self) -> None:
        self.seen = 0

    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           interface_info: Any) -> int:
        self.seen += 1
        return comsim.SERVERCALL_REJECTED if self.seen == 1 else comsim.SERVERCALL_ISHANDLED

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        return 0

    def MessagePending(self, callee_thread: int, tick_count: int, pending_type: int) -> int:
        return comsim.PENDINGMSG_WAITDEFPROCESS


async def test_each_send_is_answered_once(rt: comsim.Runtime) -> None:
    # R7 with R16 and R29: a rejected call holds the stub until its rejection, its retry
    # from its resend until its answer; a call cancelled while queued until it is dropped.
    # None leaves a hold behind (the stub would never go)
    flt = RejectOnce()
    p = await pair(rt, Rec, IRec, message_filter=flt)
    stub = p.obj.__dict__["_com_stub"]

    async def retried() -> int:
        comsim.CoRegisterMessageFilter(RejectOnce())
        return int(await p.proxy.Note(1))

    assert await p.client.run(retried) == 1
    assert flt.seen == 2 and stub.life.requests == 0

    held = Held()
    await held.start(p.server)

    async def begin() -> Any:
        call: Any = new_call(p.proxy, comsim.async_interface(IRec))
        call.Begin_Note(2)
        return call

    call = await p.client.run(begin)

    async def cancel() -> int:
        return int(await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(0))

    assert await p.client.run(cancel) == hr.S_OK
    await held.open()
    await drain(rt, p.server)
    assert p.obj.ran == [1]  # the cancelled request was never dispatched (R29)
    assert stub.life.requests == 0


async def test_table_weak_data_reconnects_while_a_request_holds_the_stub(
        rt: comsim.Runtime) -> None:
    # R7: a stub held only by a request on its way has not gone, so its TABLEWEAK data still
    # unmarshal (a new strong reference); once every strong reference and request is gone,
    # they give CO_E_OBJNOTREG. (Wine: the stub manager lives while a request holds it.)
    p = await pair(rt, Rec, IRec)

    async def weak() -> comsim.MarshalStream:
        return comsim.marshal_interface(p.obj, IRec, flags=comsim.MSHLFLAGS.TABLEWEAK)

    weak_data = await p.server.run(weak)
    held = Held()
    await held.start(p.server)
    caller = await _call_then_release(p, 1)
    other = await rt.create_sta("other")

    async def reconnect() -> Any:
        return comsim.unmarshal_interface(weak_data, IRec)

    again = await other.run(reconnect)  # the stub is held by the request: it has not gone
    await held.open()
    assert await caller == 1

    async def use_and_release() -> int:
        value = int(await again.Note(2))
        again.Release()
        return value

    assert await other.run(use_and_release) == 2
    await drain(rt, p.server)
    with pytest.raises(comsim.COMError) as err:  # every strong reference has gone now
        await other.run(reconnect)
    assert err.value.hresult == hr.CO_E_OBJNOTREG
    assert p.obj.ran == [1, 2]


class Neutral(comsim.CoClass, IRec):
    """An NA object (R5, R33) whose call waits on a gate, and whose own ``Release`` is seen."""

    threading_model = "Neutral"

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Any] = []
        self.entered = comsim.ManualResetEvent()
        self.gate = comsim.ManualResetEvent()

    async def Note(self, x: int) -> int:
        self.log.append("start")
        self.entered.Signal()
        await self.gate.Wait(0, comsim.INFINITE)
        self.log.append("end")
        return x

    def Release(self) -> int:
        n = int(super().Release())
        self.log.append(("Release", n))
        return n


async def test_a_call_into_the_na_holds_its_stub_while_it_runs(rt: comsim.Runtime) -> None:
    # R5, R7: a call into an NA object runs on the caller's thread, with no message: it holds
    # the stub from its start to its end as a request on its way does. Before, the last
    # release of the proxy, by another task of the caller, released the object mid-call
    cli = await rt.create_sta("cli")

    async def client() -> tuple[int, list[Any]]:
        proxy = await comsim.CoCreateInstance(Neutral, IRec)
        obj = proxy._stub.obj
        call = asyncio.ensure_future(proxy.Note(4))
        await obj.entered.Wait(0, comsim.INFINITE)  # (tasks of a unit share its thread, R2)
        assert proxy.Release() == 0  # the proxy's last reference
        obj.gate.Signal()
        got = await call
        return got, list(obj.log)

    got, log = await cli.run(client)
    assert got == 4
    assert log == [("Release", 1), "start", "end", ("Release", 0)]
