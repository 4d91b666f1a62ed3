"""The last Release of a call object from another thread while its client apartment shuts down
(R7, R12, R18, R19, R25, R34).

Release is allowed from any thread (R12); the call object's step (its reply dropped, its count
on the proxy manager let go) is done on the client apartment's loop, in order with the replies
that apartment takes in. Once shutdown has begun the apartment takes no more messages, but its
teardown still takes in what came before (R18) and steps the call objects of those replies: a
last Release in that window waits for the teardown's end, on the client's loop, instead of
stepping the call object on the releasing thread at the same time.

Each test stops one of the two threads at the step where the other one's must not come in
(``_Paused``): the client's loop just after it stepped a reply, or the releasing thread just
after it stepped the release.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import comsim
import comsim.testing
from comsim._core.callobj import CallMachine, Input

from ..helpers import Calc, new_call, noop, pair

#: how long a test waits for a hand-off that should come at once (a failure, not a pace)
_LONG = 10.0


class Gift(Calc):
    """An object that crosses inside the reply; its name tells its stub apart in the trace."""


class IMaker(comsim.Interface):
    async def Make(self) -> Any: ...


AsyncIMaker = comsim.async_interface(IMaker)


class Maker(comsim.CoClass, IMaker):
    def __init__(self) -> None:
        super().__init__()
        self.made: list[Gift] = []

    async def Make(self) -> Any:
        gift = Gift()
        self.made.append(gift)
        return gift


class _Paused(CallMachine):
    """A call object's machine that stops the thread stepping ``pause_on`` just after the step
    (where the runtime goes on to read or write the call's reply and holder), on any thread
    but ``spare``'s, until ``go`` is set; ``paused`` tells the test it is there."""

    __slots__ = ("go", "pause_on", "paused", "spare")

    def __init__(self, pause_on: Input, spare: int | None = None,
                 paused: threading.Event | None = None) -> None:
        super().__init__()
        self.pause_on = pause_on
        self.spare = spare
        self.paused = paused if paused is not None else threading.Event()
        self.go = threading.Event()

    def step(self, inp: Input) -> Any:
        t = super().step(inp)
        if inp is self.pause_on and threading.get_ident() != self.spare:
            self.paused.set()
            self.go.wait(_LONG)
        return t


async def _locks(obj: Any) -> int:
    """The references on ``obj`` besides its creator's: 1 while a stub holds it, 0 after."""
    n = int(obj.AddRef())
    obj.Release()
    return n - 2


async def _thread_ident() -> int:
    return threading.get_ident()


async def _reply_waits_then_shut(p: Any, begin: Any, gate: threading.Event
                                 ) -> tuple[Any, asyncio.Future[Any]]:
    """Run ``begin`` (it begins the call and gives the call object) in the client, then hold
    the client's thread until ``gate`` is set, so that the reply waits in its inbox, and begin
    the client's shutdown. Gives the call object and the shutdown: once ``gate`` is set, the
    client's thread goes on into its teardown, which takes the reply in."""
    entered = threading.Event()
    begun: list[Any] = []

    async def begin_and_hold() -> None:
        begun.append(await begin())
        entered.set()
        gate.wait(_LONG)  # not a COM wait: the client's thread is busy; no message is taken in

    async def held() -> None:
        await p.client.run(begin_and_hold)  # its result comes before the teardown

    async def shut() -> None:
        await p.client.shutdown()
        await holding

    holding = asyncio.ensure_future(held())
    assert await asyncio.to_thread(entered.wait, _LONG)
    await p.server.run(noop)  # FIFO: the request has run, its reply is in the client's inbox
    shutting = asyncio.ensure_future(shut())
    await asyncio.sleep(0)  # its first step: the client takes no more messages
    assert not p.client.alive
    return begun[0], shutting


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_last_release_while_the_teardown_takes_in_the_reply_drops_it(
        rt: comsim.Runtime) -> None:
    # R25 R7 R12 R18: the client's teardown takes in the reply (the call completes) while the
    # call object's last Release comes from another thread. The release's step waits for the
    # client's loop: the reply is dropped there, and the object reference inside it goes.
    # Stepped on the releasing thread between the reply's step and the reply being kept, it
    # found no reply to drop, and the reference was never released
    p = await pair(rt, Maker, IMaker)
    machine = _Paused(Input.REPLY)  # pauses the client's loop, just after the reply's step

    async def begin() -> Any:
        call = new_call(p.proxy, AsyncIMaker)
        call._machine = machine  # before Begin_: the call's machine
        call.Begin_Make()
        return call

    gate = threading.Event()
    try:
        call, shutting = await _reply_waits_then_shut(p, begin, gate)
        gate.set()
        assert await asyncio.to_thread(machine.paused.wait, _LONG), "the reply was not taken in"
        with comsim.testing.capture_trace() as events:
            assert call.Release() == 0  # from the test's thread, in no apartment
            machine.go.set()
            await shutting
    finally:
        gate.set()
        machine.go.set()
    (gift,) = p.obj.made
    assert await p.server.run(_locks, gift) == 0  # the reply was dropped, with its reference
    assert [e["reason"] for e in events.events("stub.disconnected", object="Gift")] == [
        "released"]
    assert await p.server.run(_locks, p.obj) == 0


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_last_release_while_the_teardown_takes_in_the_reply_lets_go_of_the_manager(
        rt: comsim.Runtime) -> None:
    # R25 R19 R34 R7 R12 R18: NA code on the client's thread begins the call through the NA's
    # proxy manager, held by the call object alone (R5: the reply comes to the thread under
    # the NA, so the client's teardown takes it in; the NA's manager does not end with the
    # client). The call object's last Release comes from another thread meanwhile: the
    # manager's count goes, once, and the object with it. Stepped on the releasing thread,
    # the release found the call in flight and left the count to the reply, which had been
    # taken in already and found nothing to let go: the manager kept the object for ever
    p = await pair(rt, Maker, IMaker, proxy=False)
    # the release has stepped here (and stopped), or has returned (its step left to the client)
    ready = threading.Event()
    machine = _Paused(Input.RELEASE, spare=await p.client.run(_thread_ident), paused=ready)

    async def begin() -> Any:
        async def in_na() -> Any:
            proxy = comsim.unmarshal_interface(p.stream)
            call = new_call(proxy, AsyncIMaker)
            proxy.Release()  # the call object holds the manager's only count
            call._machine = machine
            call.Begin_Make()
            return call

        return await rt.nta.run(in_na)

    gate = threading.Event()

    def release() -> int:
        try:
            return int(call.Release())
        finally:
            ready.set()

    try:
        call, shutting = await _reply_waits_then_shut(p, begin, gate)
        releasing = asyncio.ensure_future(asyncio.to_thread(release))
        assert await asyncio.to_thread(ready.wait, _LONG)
        gate.set()  # the client's teardown takes the reply in (and ends)
        await shutting
        machine.go.set()
        assert await releasing == 0
    finally:
        gate.set()
        machine.go.set()
    assert await p.server.run(_locks, p.obj) == 0  # the manager went, and the object with it
