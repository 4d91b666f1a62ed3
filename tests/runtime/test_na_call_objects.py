"""Call objects begun by code in the neutral apartment (R5, R7, R18, R19, R25, R34).

NA code runs on its caller's thread, and the replies of the calls it begins come to that
thread (R5): the client side of such a call is the apartment under the NA, or, for NA code
entered from no apartment, the caller's own loop. The proxy manager the call object holds a
count on is the NA's, which ends only with the runtime; so what the call object keeps for a
call in flight after its last Release (R25) must go when no reply will ever be taken in for
it, as it would with the reply: once, and only the call object's own count.

The server object lives in the MTA (R3: nothing is serialized there), where its method waits
for the test to open a gate, and tells the test it has returned -- its reply is sent in the
same step (``server.server_task``), before the test's waiting unit goes on.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import comsim
import comsim.testing

from ..helpers import Calc, drain, new_call, serve


class Gift(Calc):
    """An object that crosses inside the reply."""


class IMaker(comsim.Interface):
    async def Make(self) -> Any: ...


AsyncIMaker = comsim.async_interface(IMaker)


class GatedMaker(comsim.CoClass, IMaker):
    """``Make`` waits for ``gate`` (a plain wait: in the MTA it holds nothing up), then gives
    a new ``Gift``; ``returned`` is set as it returns."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.returned = asyncio.Event()
        self.made: list[Gift] = []

    async def Make(self) -> Any:
        self.started.set()
        await self.gate.wait()
        gift = Gift()
        self.made.append(gift)
        self.returned.set()
        return gift


async def _open_and_wait(obj: GatedMaker) -> None:
    """In the MTA: let ``Make`` return, and wait until it has (its reply is sent by then)."""
    obj.gate.set()
    await obj.returned.wait()


async def _locks(obj: Any) -> int:
    """The references on ``obj`` besides its creator's: 1 while a stub holds it, 0 after."""
    n = int(obj.AddRef())
    obj.Release()
    return n - 2


async def _served(rt: comsim.Runtime) -> tuple[GatedMaker, comsim.MarshalStream]:
    obj, stream = await serve(rt.mta, GatedMaker, IMaker)
    return obj, stream


def _begin_in_na(stream: comsim.MarshalStream, kept: list[Any], release: bool) -> Any:
    """NA code: unmarshal the object into the NA, keep the proxy's count in ``kept``, begin
    ``Make`` through a call object, and (``release``) let the call object go at once, its
    call in flight; else give it."""

    async def in_na() -> Any:
        proxy = comsim.unmarshal_interface(stream)
        kept.append(proxy)  # the NA's own count on its manager; the call object holds another
        call = new_call(proxy, AsyncIMaker)
        call.Begin_Make()
        if release:
            assert call.Release() == 0
            return None
        return call

    return in_na


@pytest.mark.asyncio
async def test_released_in_flight_then_client_sta_shuts_down_lets_go_of_the_na_manager(
        rt: comsim.Runtime) -> None:
    # R25 R7 R34 R18 R5: NA code on STA "cli" begins Make and releases the call object while
    # the call is in flight: the NA's manager is kept for the reply (R25). "cli" shuts down
    # before the reply comes, so the reply is never taken in (R18): the call object's count on
    # the NA's manager goes then, once. Before, nothing let it go: the NA's manager, which does
    # not end with "cli", kept the object until the runtime ended
    obj, stream = await _served(rt)
    cli = await rt.create_sta("cli")
    kept: list[Any] = []
    await cli.run(rt.nta.run, _begin_in_na(stream, kept, release=True))
    (proxy,) = kept
    assert await rt.mta.run(_locks, obj) == 1  # the call is in flight
    with comsim.testing.capture_trace() as events:
        await cli.shutdown()
        await rt.mta.run(_open_and_wait, obj)
        # the NA's own count is the manager's last one: the call object's went, and only it
        assert proxy.Release() == 0
        await drain(rt, rt.mta)  # R1: the release reaches the object's MTA as a message
        assert await rt.mta.run(_locks, obj) == 0
    (gift,) = obj.made
    assert await rt.mta.run(_locks, gift) == 0  # R7: the dropped reply's reference went
    assert [e["reason"] for e in events.events("stub.disconnected", object="GatedMaker")] == [
        "released"]


@pytest.mark.asyncio
async def test_last_release_after_the_client_sta_has_shut_down_lets_go_of_the_na_manager(
        rt: comsim.Runtime) -> None:
    # R25 R7 R34 R18 R12 R5: the same call, but its call object's last Release comes from the
    # test (no apartment, R12: allowed) after "cli" has shut down: its step runs there, and
    # since no reply will ever be taken in, the count goes at once. Before, the step kept the
    # manager for a reply that could not come
    obj, stream = await _served(rt)
    cli = await rt.create_sta("cli")
    kept: list[Any] = []
    call = await cli.run(rt.nta.run, _begin_in_na(stream, kept, release=False))
    (proxy,) = kept
    await cli.shutdown()
    assert call.Release() == 0
    await rt.mta.run(_open_and_wait, obj)
    assert proxy.Release() == 0
    await drain(rt, rt.mta)  # R1: the release reaches the object's MTA as a message
    assert await rt.mta.run(_locks, obj) == 0


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_last_release_from_another_thread_during_the_client_sta_teardown(
        rt: comsim.Runtime) -> None:
    # R25 R7 R34 R18 R12 R5: the last Release comes from the test's thread while "cli" shuts
    # down: "cli" takes no more messages, so the release's step is left to the end of its
    # teardown (``Apartment._run_at_close``), where no reply can come any more: the count on
    # the NA's manager goes there, once. Before, the step kept it for the reply
    obj, stream = await _served(rt)
    cli = await rt.create_sta("cli")
    kept: list[Any] = []
    begun: list[Any] = []
    entered, gate = threading.Event(), threading.Event()

    async def begin_and_hold() -> None:
        begun.append(await rt.nta.run(_begin_in_na(stream, kept, release=False)))
        entered.set()
        gate.wait(10.0)  # not a COM wait: "cli"'s thread is busy; its teardown waits

    async def shut() -> None:
        await cli.shutdown()
        await holding

    holding = asyncio.ensure_future(cli.run(begin_and_hold))
    try:
        assert await asyncio.to_thread(entered.wait, 10.0)
        shutting = asyncio.ensure_future(shut())
        await asyncio.sleep(0)  # its first step: "cli" takes no more messages
        assert not cli.alive
        (call,), (proxy,) = begun, kept
        assert call.Release() == 0
    finally:
        gate.set()
    await shutting
    await rt.mta.run(_open_and_wait, obj)
    assert proxy.Release() == 0
    await drain(rt, rt.mta)  # R1: the release reaches the object's MTA as a message
    assert await rt.mta.run(_locks, obj) == 0


@pytest.mark.asyncio
async def test_sta_own_call_object_released_in_flight_then_sta_shuts_down(
        rt: comsim.Runtime) -> None:
    # R25 R7 R34 R18: the same shape without the NA: the call object is "cli"'s own, on
    # "cli"'s proxy manager, which ends with "cli" (R7, R18): the object goes, once
    obj, stream = await _served(rt)
    cli = await rt.create_sta("cli")

    async def in_cli() -> None:
        proxy = comsim.unmarshal_interface(stream)
        call = new_call(proxy, AsyncIMaker)
        proxy.Release()  # the call object holds the manager's only count
        call.Begin_Make()
        assert call.Release() == 0

    await cli.run(in_cli)
    await rt.mta.run(obj.started.wait)  # Make runs: its request has arrived (whatever the seed)
    assert await rt.mta.run(_locks, obj) == 1  # the call is in flight
    with comsim.testing.capture_trace() as events:
        await cli.shutdown()
        await rt.mta.run(_open_and_wait, obj)
        await drain(rt, rt.mta)  # R1: the release reaches the object's MTA as a message
        assert await rt.mta.run(_locks, obj) == 0
    assert [e["reason"] for e in events.events("stub.disconnected", object="GatedMaker")] == [
        "released"]


@pytest.mark.asyncio
async def test_call_object_begun_by_na_code_from_no_apartment_releases_cleanly(
        rt: comsim.Runtime) -> None:
    # R25 R5 R7 R34 R12: NA code entered from no apartment begins Make and releases the call
    # object, its call in flight: Release gives 0 and raises nothing (before: AttributeError,
    # the caller's loop standing in for a client apartment lacked what Release reads). The
    # reply comes to the caller's loop and is dropped there, and the call object's count on
    # the NA's manager goes with it, once
    obj, stream = await _served(rt)
    kept: list[Any] = []
    with comsim.testing.capture_trace() as events:
        await rt.nta.run(_begin_in_na(stream, kept, release=True))
        (proxy,) = kept
        assert await rt.mta.run(_locks, obj) == 1  # the call is in flight
        await rt.mta.run(_open_and_wait, obj)
        await drain(rt, rt.mta)  # the reply, sent to this loop, is taken in here
        assert [e["reason"] for e in events.events("call.reply_dropped", method="Make")] == [
            "released"]
        assert proxy.Release() == 0
    await drain(rt, rt.mta)  # R1: the release reaches the object's MTA as a message
    assert await rt.mta.run(_locks, obj) == 0
    (gift,) = obj.made
    assert await rt.mta.run(_locks, gift) == 0


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_call_object_begun_by_na_code_from_no_apartment_released_on_another_thread(
        rt: comsim.Runtime) -> None:
    # R25 R12 R5 R34: the last Release from another OS thread (R12: allowed) is stepped on the
    # caller's loop, in order with the replies it takes in: it raises nothing, and once the
    # reply is in, the NA's own count is the manager's last
    obj, stream = await _served(rt)
    kept: list[Any] = []
    call = await rt.nta.run(_begin_in_na(stream, kept, release=False))
    (proxy,) = kept
    assert await asyncio.to_thread(call.Release) == 0
    await rt.mta.run(_open_and_wait, obj)
    await drain(rt, rt.mta)
    assert proxy.Release() == 0
    assert await rt.mta.run(_locks, obj) == 0


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_released_in_flight_by_na_code_entered_from_a_loop_that_then_closed(
        rt: comsim.Runtime) -> None:
    # R25 R7 R34 R5 R12: NA code entered from no apartment, on a loop of another thread,
    # begins Make and releases the call object in flight; that loop closes before the reply
    # comes. Its replies come to that loop, which has no teardown to let go of what the call
    # object kept for the reply: the refused reply lets go of it, once. Before, the NA's
    # manager kept the object until the runtime ended
    obj, stream = await _served(rt)
    kept: list[Any] = []

    def other_loop() -> None:
        asyncio.run(rt.nta.run(_begin_in_na(stream, kept, release=True)))

    await asyncio.to_thread(other_loop)  # that loop has closed
    (proxy,) = kept
    assert await rt.mta.run(_locks, obj) == 1  # the call is in flight
    with comsim.testing.capture_trace() as events:
        await rt.mta.run(_open_and_wait, obj)
        assert proxy.Release() == 0  # the NA's own count was the manager's last one
        assert await rt.mta.run(_locks, obj) == 0
    (gift,) = obj.made
    assert await rt.mta.run(_locks, gift) == 0  # R7: the dropped reply's reference went
    assert [e["reason"] for e in events.events("stub.disconnected", object="GatedMaker")] == [
        "released"]
