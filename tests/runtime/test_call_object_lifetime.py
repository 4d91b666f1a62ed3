"""What a call object, a stub made late and calls into the NA from many threads hold (R7, R17,
R18, R19, R25, R34).

- A call object made by a proxy's ``ICallFactory.CreateCall`` holds one count on the proxy
  manager until its last ``Release`` (R19, R25, R34): ``Begin_`` works however the proxy's
  other holders release it, and the object lives while the call object does (R7).
- A stub made in an apartment that has begun to shut down goes at once, traced with reason
  ``shutdown`` (R7, R18).
- Calls into one NA object from two OS threads at once keep its count of running calls right,
  so ``CoDisconnectObject`` ends in RPC_E_DISCONNECTED once they have finished (R5, R17).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from typing import Any

import anyio
import pytest

import comsim
import comsim.testing
from comsim import MSHLFLAGS, hresult

from ..helpers import Calc, ICalc, drain, new_call, pair
from .test_marshal import ahr_of, hr_of

AsyncICalc = comsim.async_interface(ICalc)


async def _locks(obj: Any) -> int:
    """The references on ``obj`` besides its creator's: 1 while a stub holds it, 0 after."""
    n = int(obj.AddRef())
    obj.Release()
    return n - 2


# --------------------------------------------------------------------------- call objects
@pytest.mark.asyncio
async def test_call_object_holds_its_proxy_manager(rt: comsim.Runtime) -> None:
    # R25 R19 R34 R7: the proxy's last holder releases it; the call object still holds the
    # manager: Begin_ and Finish_ work, again and again, and the object stays; the call
    # object's last Release is the manager's last count: the proxy is dead, the stub goes
    p = await pair(rt)
    proxy = p.proxy

    async def use() -> tuple[Any, ...]:
        call = new_call(proxy, AsyncICalc)
        left = proxy.Release()
        first = (call.Begin_Add(1, 2), await call.Finish_Add())
        second = (call.Begin_Add(3, 4), await call.Finish_Add())
        return left, first, second, call

    left, first, second, call = await p.client.run(use)
    assert (left, first, second) == (1, (hresult.S_OK, 3), (hresult.S_OK, 7))
    assert await p.server.run(_locks, p.obj) == 1  # the call object keeps the object

    async def release() -> tuple[int, int]:
        return call.Release(), await ahr_of(proxy.Add, 1, 2)

    with comsim.testing.capture_trace() as events:
        assert await p.client.run(release) == (0, hresult.CO_E_OBJNOTCONNECTED)
    assert [e["reason"] for e in events.events("stub.disconnected")] == ["released"]
    await drain(rt, p.server)  # R1: the object's own Release comes to it as a message
    assert await p.server.run(_locks, p.obj) == 0


@pytest.mark.asyncio
async def test_call_object_facets_keep_the_manager_until_the_last_release(
        rt: comsim.Runtime) -> None:
    # R25 R34: an interface of the call object got by QueryInterface shares its count: the
    # manager goes only with the call object's last reference, whichever interface it is
    p = await pair(rt)
    proxy = p.proxy

    async def use() -> tuple[int, ...]:
        call = new_call(proxy, AsyncICalc)
        sync = call.QueryInterface(comsim.ISynchronize)
        counts = (proxy.Release(), call.Release())
        live = await ahr_of(proxy.Add, 1, 2)  # the facet keeps the call object, and the proxy
        return (*counts, live, sync.Release(), await ahr_of(proxy.Add, 1, 2))

    assert await p.client.run(use) == (1, 1, hresult.S_OK, 0, hresult.CO_E_OBJNOTCONNECTED)
    await drain(rt, p.server)  # R1: the object's own Release comes to it as a message
    assert await p.server.run(_locks, p.obj) == 0


@pytest.mark.asyncio
async def test_released_call_object_releases_the_manager_while_its_call_runs(
        rt: comsim.Runtime) -> None:
    # R25 R7: a call object released without Finish_ lets go of the manager at once; the
    # server runs the call to its end (its reply is dropped), then the object goes
    p = await pair(rt)
    proxy = p.proxy

    async def use() -> int:
        call = new_call(proxy, AsyncICalc)
        proxy.Release()
        call.Begin_Add(1, 2)
        return call.Release()

    with comsim.testing.capture_trace() as events:
        assert await p.client.run(use) == 0
        await drain(rt, p.server, p.client)
        await drain(rt, p.server, p.client)
    (returned,) = events.events("call.returned", method="Add")
    assert returned["hresult"] == hresult.S_OK  # it ran, to its end
    (dropped,) = events.events("call.reply_dropped", method="Add")
    assert dropped["hresult"] == hresult.S_OK
    (gone,) = events.events("stub.disconnected")
    assert gone["reason"] == "released"
    # the manager went with the reply, after the call had run
    assert events.index(gone) > events.index(dropped)
    assert await p.server.run(_locks, p.obj) == 0


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_last_release_from_another_thread_steps_on_the_clients_loop(
        rt: comsim.Runtime) -> None:
    # R25 R12 R34: Release is allowed from any thread, and the count goes at once; the call
    # object's step (dropping a reply, letting go of the manager) is done on the client
    # apartment's loop, in order with the replies it takes in -- done from the releasing
    # thread, it raced the reply's step there and could keep the manager's count forever
    p = await pair(rt)
    proxy = p.proxy

    async def use() -> Any:
        call = new_call(proxy, AsyncICalc)
        proxy.Release()
        call.Begin_Add(1, 2)
        sync = call.QueryInterface(comsim.ISynchronize)
        await sync.Wait(0, comsim.INFINITE)  # the reply is taken in: the call has ended
        sync.Release()
        return call

    call = await p.client.run(use)
    entered, gate = threading.Event(), threading.Event()

    async def block() -> None:
        entered.set()
        gate.wait(10)  # not a COM wait: the client's thread is busy

    blocked = asyncio.ensure_future(p.client.run(block))
    try:
        assert await asyncio.to_thread(entered.wait, 10)
        assert call.Release() == 0  # from the test's thread, in no apartment
        assert call.Release() == 0  # released stays released
        assert await p.server.run(_locks, p.obj) == 1  # its step waits for the client's loop
    finally:
        gate.set()
        await blocked
    await drain(rt, p.client, p.server)
    assert await p.server.run(_locks, p.obj) == 0  # done there: the manager went


# --------------------------------------------------------------------------- late stubs
@pytest.mark.asyncio
async def test_an_object_is_marshalled_only_in_its_own_apartment(rt: comsim.Runtime) -> None:
    # R1: code in another apartment (here after the object's apartment shut down) may not use
    # the object itself; no stub is made, no reference taken
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def make() -> Any:
        return Calc()

    obj = await b.run(make)
    await b.shutdown()

    async def marshal() -> int:
        return hr_of(comsim.marshal_interface, obj, ICalc, MSHLFLAGS.TABLESTRONG)

    with comsim.testing.capture_trace() as events:
        assert await a.run(marshal) == hresult.RPC_E_WRONG_THREAD
    assert events.events("stub.disconnected") == []
    assert await _locks(obj) == 0  # no stub holds it


@pytest.mark.asyncio
@pytest.mark.deterministic_only  # one loop: a task of the apartment's outlives its teardown
async def test_stub_made_after_its_apartment_shut_down_goes_at_once(
        rt: comsim.Runtime) -> None:
    # R7 R18: an object whose apartment has shut down is marshalled by a task of that
    # apartment the teardown left behind (it swallows every cancel): its new stub goes at
    # once, traced with reason `shutdown`, its reference on the object with it; the data give
    # CO_E_OBJNOTCONNECTED
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    go, done = asyncio.Event(), asyncio.Event()
    made: list[Any] = []
    kept: list[asyncio.Task[None]] = []

    async def later() -> None:
        while not go.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # the teardown's, every time
                await go.wait()
        made.append(comsim.marshal_interface(made[0], ICalc, flags=MSHLFLAGS.TABLESTRONG))
        done.set()

    async def make() -> None:
        made.append(Calc())
        kept.append(asyncio.get_running_loop().create_task(later()))

    await b.run(make)
    await b.shutdown()
    with comsim.testing.capture_trace() as events:
        go.set()
        await done.wait()
    obj, stream = made
    gone = events.events("stub.disconnected")
    assert [(e["reason"], e["server"]) for e in gone] == [("shutdown", "b")]
    assert await _locks(obj) == 0

    async def get() -> int:
        return hr_of(comsim.unmarshal_interface, stream)

    assert await a.run(get) == hresult.CO_E_OBJNOTCONNECTED


# --------------------------------------------------------------------------- NA, many threads
class ITick(comsim.Interface):
    async def Tick(self) -> int: ...


class Ticker(comsim.CoClass, ITick):
    threading_model = "Neutral"

    async def Tick(self) -> int:
        return 1


def _yield_at_decision(frame: Any, event: str, _arg: Any) -> None:
    """A profile hook that lets the other threads run just as the disconnect reads how many
    calls run (``_core.stub.after_disconnect``): it widens the race the stub lock closes."""
    if event == "call" and frame.f_code.co_name == "after_disconnect":
        time.sleep(0.001)


async def _one_round(rt: comsim.Runtime, a: comsim.Apartment, b: comsim.Apartment) -> None:
    obj = await rt.nta.run(Ticker)

    async def marshal() -> Any:
        return comsim.marshal_interface(obj, ITick, flags=MSHLFLAGS.TABLESTRONG)

    stream = await rt.nta.run(marshal)

    async def get() -> Any:
        return comsim.unmarshal_interface(stream)

    pa, pb = await a.run(get), await b.run(get)
    calls = [0, 0]

    async def hammer(p: Any, who: int, n: int) -> tuple[int, int]:
        for _ in range(n):
            code = await ahr_of(p.Tick)
            if code:
                return calls[who], code
            calls[who] += 1
        return calls[who], hresult.S_OK

    async def disconnect() -> None:
        sys.setprofile(_yield_at_decision)
        try:
            comsim.CoDisconnectObject(obj)
        finally:
            sys.setprofile(None)

    async def cut_in() -> None:
        while min(calls) < 50:  # both threads are calling
            await asyncio.sleep(0.0005)
        await rt.nta.run(disconnect)

    results = await asyncio.gather(a.run(hammer, pa, 0, 100_000),
                                   b.run(hammer, pb, 1, 100_000), cut_in())
    for done, code in results[:2]:
        assert code in (hresult.CO_E_OBJNOTCONNECTED, hresult.RPC_E_DISCONNECTED), (done, code)
    # every call has ended: the object is disconnected, not still disconnecting
    assert await a.run(hammer, pa, 0, 1) == (calls[0], hresult.RPC_E_DISCONNECTED)
    assert await b.run(hammer, pb, 1, 1) == (calls[1], hresult.RPC_E_DISCONNECTED)


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_na_object_called_from_two_threads_at_once(rt: comsim.Runtime) -> None:
    # R5 R17: two threaded STAs (two OS threads) call one NA object at once, many times, and
    # the NA disconnects it while they do (letting them run just as it reads the count of
    # running calls): that count stays right, so once they have finished its calls fail with
    # RPC_E_DISCONNECTED, never stuck at CO_E_OBJNOTCONNECTED (a disconnecting stub waiting
    # for a call that has ended). 20 rounds, a new object each
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    for _round in range(20):
        await _one_round(rt, a, b)


@pytest.mark.deterministic_only
@pytest.mark.asyncio
async def test_last_release_from_another_thread_goes_through_the_pump(
        rt: comsim.Runtime) -> None:
    # R12 R25 (the transport seam): a last Release from code on another simulated thread than
    # the client's posts its step to the client, as the threaded runtime posts it to the
    # client's thread; one from the client's own thread steps at once. On the deterministic
    # runtime every apartment shares one OS thread, which once made every Release step at
    # once, out of the pump's reach (the seed could not order it against replies in flight)
    p = await pair(rt)

    async def begin() -> Any:
        call = new_call(p.proxy, AsyncICalc)
        call.Begin_Add(1, 2)
        sync = call.QueryInterface(comsim.ISynchronize)
        assert await sync.Wait(0, comsim.INFINITE) == hresult.S_OK  # the reply is taken in
        sync.Release()
        return call

    def delivered() -> int:
        schedule = rt.schedule
        assert schedule is not None
        return sum(d >= 0 for d in schedule.decisions)  # deliveries, not deferrals

    own = await p.client.run(begin)
    other = await p.client.run(begin)

    async def release_own() -> int:
        before = delivered()
        assert own.Release() == 0  # on the client's own thread
        return delivered() - before

    assert await p.client.run(release_own) == 0
    before = delivered()
    assert other.Release() == 0  # from code in no apartment
    await anyio.sleep(0.001)  # virtual time: the step is delivered
    assert delivered() == before + 1
