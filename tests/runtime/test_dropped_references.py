"""Object references inside messages that are never unpacked are released (R7).

COM's RPC runtime releases the marshalled interface pointers of a message it discards; comsim
does the same wherever a request or a reply is dropped: a reply nobody takes in (R25, R29
`finished`), a reply taken in but never finished (R25, R32), a request cancelled before it ran
(R29 `queued`), a request failed before its arguments were unpacked (an injected fault, a
rejection given up, R16; the server apartment's shutdown, R18). Each test watches the object
whose reference the message carried: once nothing else holds it, its stub goes (traced
``stub.disconnected``, reason ``released``) and the stub's reference on it with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

import comsim
import comsim.testing
from comsim import hresult

from ..helpers import Calc, drain, serve
from .test_marshal import ahr_of

INFINITE = comsim.INFINITE


class Gift(Calc):
    """An object that crosses inside a message; its name tells its stub apart in the trace."""


class IShop(comsim.Interface):
    async def Make(self) -> Any: ...
    async def Keep(self, value: Any) -> None: ...
    async def Quick(self, returning: Any) -> Any: ...
    async def Later(self, started: Any, release: Any) -> Any: ...


AsyncIShop = comsim.async_interface(IShop)


class Shop(comsim.CoClass, IShop):
    """Makes gifts (kept in ``made``, read by the test by reference) and takes them."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[Gift] = []
        self.kept: list[Any] = []

    async def Make(self) -> Any:
        gift = Gift()
        self.made.append(gift)
        return gift

    async def Keep(self, value: Any) -> None:
        self.kept.append(value)

    async def Quick(self, returning: Any) -> Any:
        gift = Gift()
        self.made.append(gift)
        returning.Signal()  # nothing awaits after this: the method returns at once
        return gift

    async def Later(self, started: Any, release: Any) -> Any:
        started.Signal()
        await release.Wait(0, INFINITE)
        gift = Gift()
        self.made.append(gift)
        return gift


class NeutralShop(Shop):
    threading_model = "Neutral"


async def _locks(obj: Any) -> int:
    """The references on ``obj`` besides its creator's: 1 while a stub holds it, 0 after."""
    n = int(obj.AddRef())
    obj.Release()
    return n - 2


def _gone(events: Any, name: str = "Gift") -> list[str]:
    return [e["reason"] for e in events.events("stub.disconnected", object=name)]


async def _shop(rt: comsim.Runtime) -> tuple[comsim.Apartment, comsim.Apartment, Any, Any]:
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")
    shop, stream = await serve(srv, Shop, IShop)

    async def get() -> Any:
        return comsim.unmarshal_interface(stream)

    return srv, cli, shop, await cli.run(get)


def _new_call(proxy: Any) -> Any:
    factory = proxy.QueryInterface(comsim.ICallFactory)
    call = factory.CreateCall(AsyncIShop)
    factory.Release()
    return call


# --------------------------------------------------------------------------- replies
@pytest.mark.asyncio
async def test_reply_of_a_released_call_object_releases_its_references(
        rt: comsim.Runtime) -> None:
    # R7 R25: the call object is released without Finish_; its reply, carrying an object
    # reference, is dropped when it comes: the reference goes with it
    srv, cli, shop, proxy = await _shop(rt)

    async def begin_and_release() -> None:
        call = _new_call(proxy)
        call.Begin_Make()
        call.Release()

    with comsim.testing.capture_trace() as events:
        await cli.run(begin_and_release)
        await drain(rt, srv, cli)
        await drain(rt, srv, cli)
    (gift,) = shop.made
    assert events.events("call.reply_dropped", method="Make")
    assert _gone(events) == ["released"]
    assert await srv.run(_locks, gift) == 0


@pytest.mark.asyncio
async def test_reply_taken_in_but_never_finished_releases_its_references(
        rt: comsim.Runtime) -> None:
    # R7 R25: the reply was taken in (the call object's event is set), then the call object
    # is released without Finish_: the kept reply is never unpacked, its reference goes
    srv, cli, shop, proxy = await _shop(rt)

    async def begin_wait_release() -> tuple[int, int]:
        call = _new_call(proxy)
        call.Begin_Make()
        sync = call.QueryInterface(comsim.ISynchronize)
        waited = await sync.Wait(0, INFINITE)
        sync.Release()
        return waited, call.Release()

    with comsim.testing.capture_trace() as events:
        assert await cli.run(begin_wait_release) == (hresult.S_OK, 0)
    (gift,) = shop.made
    assert _gone(events) == ["released"]
    await drain(rt, srv)  # R1: cli let the gift's stub go; its Release comes to srv
    assert await srv.run(_locks, gift) == 0


async def _one_late_reply(seed: int) -> None:
    async with comsim.Runtime(deterministic=True, seed=seed) as rt:
        srv, cli, shop, proxy = await _shop(rt)
        rt.set_latency(5.0, source=srv.name, target=cli.name)
        returning = comsim.ManualResetEvent()

        async def client() -> tuple[int, int]:
            call = _new_call(proxy)
            call.Begin_Quick(returning)
            assert await returning.Wait(0, INFINITE) == hresult.S_OK
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            code = await cancel.Cancel(0)
            cancel.Release()
            finished = await ahr_of(call.Finish_Quick)
            call.Release()
            return code, finished

        with comsim.testing.capture_trace() as events:
            assert await cli.run(client) == (hresult.S_OK, hresult.RPC_E_CALL_CANCELED)
            await asyncio.sleep(10.0)  # virtual time: the late reply arrives meanwhile
            await drain(rt, srv, cli)
        assert [e["stage"] for e in events.events("call.cancelled")] == ["finished"]
        (dropped,) = events.events("call.reply_dropped", method="Quick")
        assert dropped["hresult"] == hresult.S_OK
        (gift,) = shop.made
        assert _gone(events) == ["released"], seed
        assert await srv.run(_locks, gift) == 0


@pytest.mark.deterministic_only
@pytest.mark.asyncio
async def test_late_reply_of_a_cancelled_call_releases_its_references() -> None:
    # R7 R29: stage `finished`: the server returned an object, the cancel came too late, the
    # reply is dropped: the reference it carried goes with it (20 seeds)
    for seed in range(20):
        await _one_late_reply(seed)


@pytest.mark.asyncio
async def test_reply_to_an_apartment_gone_releases_its_references(rt: comsim.Runtime) -> None:
    # R7 R18: the client apartment shuts down while the server runs its call; the reply,
    # carrying an object reference, has nowhere to go: the reference goes with it
    srv, cli, shop, proxy = await _shop(rt)
    started = comsim.ManualResetEvent()
    release = comsim.ManualResetEvent()

    async def begin() -> None:
        call = _new_call(proxy)
        call.Begin_Later(started, release)

    with comsim.testing.capture_trace() as events:
        await cli.run(begin)
        assert await started.Wait(0, INFINITE) == hresult.S_OK
        await cli.shutdown()
        release.Signal()
        await drain(rt, srv)
        await drain(rt, srv)
    (gift,) = shop.made
    (dropped,) = events.events("call.reply_dropped", method="Later")
    assert dropped["reason"] == "client apartment gone"
    assert _gone(events) == ["released"]
    assert await srv.run(_locks, gift) == 0


# --------------------------------------------------------------------------- requests
@pytest.mark.asyncio
async def test_request_cancelled_while_queued_releases_its_arguments(
        rt: comsim.Runtime) -> None:
    # R7 R29: stage `queued`: the request never runs, its arguments are never unpacked; the
    # client's object they carried is released at the cancel
    srv, cli, shop, proxy = await _shop(rt)
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    busy = comsim.ManualResetEvent()

    async def blocker() -> None:
        busy.Signal()
        await asyncio.wrap_future(gate)  # a non-COM await: the STA runs nothing else (R2)

    async def client() -> tuple[int, int, int]:
        mine = Gift()
        call = _new_call(proxy)
        call.Begin_Keep(mine)
        held = await _locks(mine)  # the request holds its stub
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        code = await cancel.Cancel(0)
        cancel.Release()
        call.Release()
        return held, code, await _locks(mine)

    with comsim.testing.capture_trace() as events:
        blocked = asyncio.ensure_future(srv.run(blocker))
        assert await busy.Wait(0, INFINITE) == hresult.S_OK
        assert await cli.run(client) == (1, hresult.S_OK, 0)
        gate.set_result(None)
        await blocked
        await drain(rt, srv, cli)
    assert [e["stage"] for e in events.events("call.cancelled")] == ["queued"]
    assert _gone(events) == ["released"]
    assert shop.kept == []


@pytest.mark.asyncio
async def test_injected_fault_releases_the_arguments(rt: comsim.Runtime) -> None:
    # R7: a fault injected before the arguments are unpacked fails the call; the object they
    # carried is released
    _srv, cli, shop, proxy = await _shop(rt)
    rt.inject_fault("Keep", hresult.E_FAIL, apartment="srv")

    async def client() -> tuple[int, Gift]:
        mine = Gift()
        return await ahr_of(proxy.Keep, [mine]), mine

    with comsim.testing.capture_trace() as events:
        code, mine = await cli.run(client)
    assert code == hresult.E_FAIL
    assert _gone(events) == ["released"]
    # R1: srv let go of the arguments; the gift's Release comes to cli as a message
    await drain(rt, cli)
    assert await cli.run(_locks, mine) == 0
    assert shop.kept == []


@pytest.mark.asyncio
async def test_injected_fault_in_the_na_releases_the_arguments(rt: comsim.Runtime) -> None:
    # R7 R5: the same for a call into the neutral apartment, which runs on the caller's thread
    cli = await rt.create_sta("cli")
    rt.inject_fault("Keep", hresult.E_FAIL)

    async def client() -> tuple[int, int, list[Any]]:
        shop = await comsim.CoCreateInstance(NeutralShop, IShop)
        mine = Gift()
        code = await ahr_of(shop.Keep, mine)
        return code, await _locks(mine), shop

    with comsim.testing.capture_trace() as events:
        code, locks, _shop_proxy = await cli.run(client)
    assert (code, locks) == (hresult.E_FAIL, 0)
    assert _gone(events) == ["released"]


class _Rejecting(comsim.IMessageFilter):
    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           interface_info: Any) -> int:
        return comsim.SERVERCALL_REJECTED

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        return -1

    def MessagePending(self, callee_thread: int, tick_count: int, pending_type: int) -> int:
        return comsim.PENDINGMSG_WAITDEFPROCESS


@pytest.mark.asyncio
async def test_rejected_call_given_up_releases_the_arguments(rt: comsim.Runtime) -> None:
    # R7 R16: the server's filter rejects the call and the caller (no filter) gives up at once:
    # the request is never sent again, its arguments never unpacked
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")
    shop, stream = await serve(srv, Shop, IShop, message_filter=_Rejecting())

    async def client() -> tuple[int, int]:
        proxy = comsim.unmarshal_interface(stream)
        mine = Gift()
        code = await ahr_of(proxy.Keep, mine)
        return code, await _locks(mine)

    with comsim.testing.capture_trace() as events:
        assert await cli.run(client) == (hresult.RPC_E_CALL_REJECTED, 0)
    assert _gone(events) == ["released"]
    assert shop.kept == []


@pytest.mark.asyncio
async def test_request_answered_by_the_servers_shutdown_releases_its_arguments(
        rt: comsim.Runtime) -> None:
    # R7 R18: a request queued (or in flight) when its server apartment shuts down is answered
    # RPC_E_DISCONNECTED without running: the object its arguments carried is released
    srv, cli, shop, proxy = await _shop(rt)
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    busy = comsim.ManualResetEvent()
    mine: list[Any] = []

    async def blocker() -> None:
        busy.Signal()
        await asyncio.wrap_future(gate)

    async def client() -> Any:
        gift = Gift()
        mine.append(gift)
        call = _new_call(proxy)
        call.Begin_Keep(gift)
        return call

    async def finish(call: Any) -> int:
        code = await ahr_of(call.Finish_Keep)
        call.Release()
        return code

    with comsim.testing.capture_trace() as events:
        blocked = asyncio.ensure_future(srv.run(blocker))
        assert await busy.Wait(0, INFINITE) == hresult.S_OK
        call = await cli.run(client)
        await srv.shutdown()
        with pytest.raises(comsim.COMError):
            await blocked
        assert await cli.run(finish, call) == hresult.RPC_E_DISCONNECTED
        # R1: srv's teardown let the gift's stub go; the gift's Release comes to cli
        await drain(rt, cli)
        assert await cli.run(_locks, mine[0]) == 0
    assert _gone(events) == ["released"]
    assert shop.kept == []
