"""An apartment's shutdown ends every task of its loop (R18): the tasks its units spawn with
``asyncio.create_task`` too, and a task that swallows its cancel does not hang the shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr
from comsim._core.rules import TEARDOWN_STALLS

from ..helpers import new_call, pair

pytestmark = pytest.mark.asyncio


class IWait(comsim.Interface):
    async def Hold(self, entered: Any, release: Any) -> str: ...
    async def Add(self, a: int, b: int) -> int: ...


class Holder(comsim.CoClass, IWait):
    async def Hold(self, entered, release):
        entered.Signal()  # the call is in: the client's task waits for its reply
        await release.Wait(0, comsim.INFINITE)  # a COM wait: the STA takes other calls in
        return "released"

    async def Add(self, a, b):
        return a + b


async def test_a_task_a_unit_spawned_ends_with_its_apartment(rt: comsim.Runtime) -> None:
    # R18: the apartment's thread ends, and with it every task on its loop; before, a task
    # spawned by a unit outlived the shutdown on the deterministic runtime
    sta = await rt.create_sta("spawner")
    seen: list[str] = []
    spawned: list[asyncio.Task[Any]] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def unit() -> None:
        spawned.append(asyncio.create_task(forever()))
        await asyncio.sleep(0)  # it starts

    await sta.run(unit)
    await sta.shutdown()
    assert seen == ["cancelled"]
    assert spawned[0].cancelled()
    assert not sta.alive


async def test_a_spawned_task_in_a_call_is_cancelled_while_the_teardown_runs(
        rt: comsim.Runtime) -> None:
    # R18: a spawned task in a synchronous call to another apartment is ended by the teardown,
    # before the apartment closes; its call is abandoned (the server runs on), and the clean-up
    # it makes after its cancel is answered, not lost. Before, on the threaded runtime, it was
    # cancelled only once the loop had stopped, where its clean-up call could never end, and the
    # unit awaiting the shutdown from the server's STA never came back
    p = await pair(rt, Holder, IWait, server="srv", client="cli")
    release = await p.server.run(comsim.StdEvent)
    got: list[Any] = []
    entered = comsim.ManualResetEvent()  # a kernel event: any thread may signal it

    async def in_call() -> None:
        try:
            await p.proxy.Hold(entered, release)
        except BaseException as exc:
            got.append(type(exc).__name__)
            try:
                got.append(await p.proxy.Add(1, 2))
            except comsim.COMError as err:
                got.append(hr.name(err.hresult))
            raise

    tasks: list[asyncio.Task[None]] = []

    async def spawn() -> None:
        tasks.append(asyncio.create_task(in_call()))

    async def shut_client() -> None:  # runs in the server's STA while Hold waits there
        await p.client.shutdown()

    await p.client.run(spawn)
    await entered.Wait(0, comsim.INFINITE)
    await p.server.run(shut_client)
    assert not p.client.alive
    assert got and got[0] == "CancelledError"
    assert len(got) == 2 and got[1] in (3, "RPC_E_DISCONNECTED", "CO_E_OBJNOTCONNECTED",
                                        "RPC_E_CALL_REJECTED", "RPC_E_CALL_CANCELED")
    await p.server.run(release.Signal)


async def test_a_unit_that_swallows_its_cancel_does_not_hang_the_shutdown(
        rt: comsim.Runtime) -> None:
    # R18: the teardown cancels again a task still running after a grace period, and after a
    # few such rounds leaves it behind; before, the shutdown waited for it for ever
    sta = await rt.create_sta("stubborn")
    swallowed: list[int] = []
    started = comsim.ManualResetEvent()

    async def stubborn() -> None:
        gate = asyncio.Event()  # never set
        started.Signal()
        while True:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                swallowed.append(1)
                if len(swallowed) >= 5:
                    raise

    runner = asyncio.ensure_future(sta.run(stubborn))
    await started.Wait(0, comsim.INFINITE)
    await sta.shutdown()
    assert not sta.alive
    # cancelled once, then again after each grace period; the threaded runtime's loop cancels
    # what is left once more as it closes
    assert 1 + TEARDOWN_STALLS <= len(swallowed) <= 5
    with pytest.raises(comsim.COMError) as err:  # the unit left behind is answered as gone
        await runner
    assert err.value.hresult == hr.RPC_E_DISCONNECTED


class IStubborn(comsim.Interface):
    async def Hang(self, started: Any) -> int: ...


class Stubborn(comsim.CoClass, IStubborn):
    """A method that swallows every cancel; only ``gate`` ends it."""

    def __init__(self) -> None:
        super().__init__()
        self.swallowed = 0
        self.gate: asyncio.Event | None = None

    async def Hang(self, started: Any) -> int:
        self.gate = asyncio.Event()
        started.Signal()
        while not self.gate.is_set():
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.swallowed += 1
        return 1


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_call_whose_method_is_left_behind_fails_disconnected(
        rt: comsim.Runtime, asynchronous: bool) -> None:
    # R18: calls in flight to an apartment that shuts down fail with RPC_E_DISCONNECTED, and
    # nothing hangs: also when the method swallows every cancel and the teardown leaves its
    # task behind. Before, its caller waited for a reply for ever
    p = await pair(rt, Stubborn, IStubborn)
    started = comsim.ManualResetEvent()

    async def call() -> Any:
        try:
            if asynchronous:
                c: Any = new_call(p.proxy, comsim.async_interface(IStubborn))
                c.Begin_Hang(started)
                return await c.Finish_Hang()
            return await p.proxy.Hang(started)
        except comsim.COMError as e:
            return hr.name(e.hresult)

    caller = asyncio.ensure_future(p.client.run(call))
    await started.Wait(0, comsim.INFINITE)
    await p.server.shutdown()
    assert p.obj.swallowed >= 1 + TEARDOWN_STALLS  # it was left behind, still running
    with anyio.fail_after(10):
        assert await caller == "RPC_E_DISCONNECTED"
    assert p.obj.gate is not None
    if rt.deterministic:  # on this loop still: let it end (its late reply is dropped)
        p.obj.gate.set()
