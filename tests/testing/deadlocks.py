"""Scenarios that deadlock (or must not), for ``test_deadlock``; module-level functions, so
that the reports name them plainly (``run call_hang``, not ``test_x.<locals>.client``).

Each scenario puts what the test needs to look at afterwards in ``SEEN``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio

import comsim

from ..helpers import pair, serve, unmarshal

SEEN: dict[str, Any] = {}


def note_loop() -> None:
    """For the test's watchdog: the loop to stop should the scenario hang after all."""
    SEEN["loop"] = asyncio.get_running_loop()


class IHang(comsim.Interface):
    async def Hang(self) -> None: ...


AsyncIHang = comsim.async_interface(IHang)


class Hanger(comsim.CoClass, IHang):
    """Its method awaits an ``anyio.Event`` that nobody sets (a non-COM await, R2)."""

    cancel_policy = "cooperative"  # a cancel does not interrupt it (R30)

    async def Hang(self) -> None:
        SEEN["event"] = event = anyio.Event()
        try:
            await event.wait()
        finally:
            SEEN["hang ended"] = True  # the cleanup cancelled it


async def call_hang(proxy: Any) -> None:
    await proxy.Hang()


async def hang_scenario() -> None:
    """STA A calls STA B's ``Hang`` synchronously (a COM wait, R2, R13)."""
    note_loop()
    async with comsim.Runtime(deterministic=True, seed=0) as rt:
        p = await pair(rt, Hanger, IHang, server="B", client="A")
        await p.client.run(call_hang, p.proxy)


async def wait_hang(proxy: Any, how: str) -> None:
    """Begin_Hang, then wait for it: Finish_, ISynchronize.Wait or Cancel's grace (R22, R23,
    R28), each a COM wait (R2)."""
    factory = proxy.QueryInterface(comsim.ICallFactory)
    call = factory.CreateCall(AsyncIHang)
    call.Begin_Hang()
    await anyio.sleep(1)  # virtual: the call is dispatched meanwhile
    if how == "cancel":
        await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(comsim.INFINITE)
    elif how == "wait":
        await call.QueryInterface(comsim.ISynchronize).Wait(0, comsim.INFINITE)
    await call.Finish_Hang()


async def begin_scenario(how: str) -> None:
    note_loop()
    async with comsim.Runtime(deterministic=True, seed=0) as rt:
        p = await pair(rt, Hanger, IHang, server="B", client="A")
        await p.client.run(wait_hang, p.proxy, how)


async def call_hang_cancellable(proxy: Any) -> None:
    comsim.CoEnableCallCancellation()
    SEEN["thread"] = comsim.current_thread_id()
    await proxy.Hang()


async def co_cancel_hang() -> None:
    await anyio.sleep(1)  # virtual: A's call is dispatched meanwhile
    await comsim.CoCancelCall(SEEN["thread"], comsim.INFINITE)


async def co_cancel_scenario() -> None:
    """STA A calls STA B's ``Hang`` (cancellable); STA C cancels it with ``CoCancelCall`` and
    waits out the grace period from its own apartment (R31, R28: a COM wait of C's unit)."""
    note_loop()
    async with comsim.Runtime(deterministic=True, seed=0) as rt:
        p = await pair(rt, Hanger, IHang, server="B", client="A")
        c = await rt.create_sta("C")
        async with anyio.create_task_group() as tg:
            tg.start_soon(p.client.run, call_hang_cancellable, p.proxy)
            tg.start_soon(c.run, co_cancel_hang)


async def begin_hang_in_na(stream: comsim.MarshalStream) -> Any:
    """NA code (entered from A): unmarshal ``Hang``'s object into the NA and begin it through a
    call object; its client side is A, the thread under the NA code (R5)."""
    proxy = comsim.unmarshal_interface(stream)
    factory = proxy.QueryInterface(comsim.ICallFactory)
    call = factory.CreateCall(AsyncIHang)
    call.Begin_Hang()
    return call


async def cancel_in_na(call: Any) -> None:
    """NA code (entered from C): cancel the call that A's thread began, and wait out the grace
    period (R28: a COM wait of C's unit, R5)."""
    await anyio.sleep(1)  # virtual: the call is dispatched meanwhile
    await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(comsim.INFINITE)


async def na_cancel_scenario() -> None:
    """B serves ``Hang``; NA code entered from A begins it; NA code entered from C cancels
    it: the cancel's step goes to A's thread, and C waits for its outcome."""
    note_loop()
    async with comsim.Runtime(deterministic=True, seed=0) as rt:
        a, b, c = [await rt.create_sta(n) for n in "ABC"]
        _, stream = await serve(b, Hanger, IHang)
        call = await a.run(rt.nta.run, begin_hang_in_na, stream)
        await c.run(rt.nta.run, cancel_in_na, call)


class IPing(comsim.Interface):
    async def Ping(self) -> None: ...
    async def CallBack(self, target: Any) -> None: ...


class Pinger(comsim.CoClass, IPing):
    def __init__(self) -> None:
        super().__init__()
        self.pinged = anyio.Event()

    async def Ping(self) -> None:
        self.pinged.set()

    async def CallBack(self, target: Any) -> None:
        await target.Ping()


async def begin_then_await_ping(proxy: Any, home: Any) -> None:
    """A's unit starts B's CallBack (Begin_: no wait), then waits by non-COM means for the Ping
    that B's CallBack makes into A: that call is queued behind this very unit (R2's choice)."""
    factory = proxy.QueryInterface(comsim.ICallFactory)
    call = factory.CreateCall(comsim.async_interface(IPing))
    call.Begin_CallBack(home)
    SEEN["event"] = home.pinged
    await home.pinged.wait()


async def callback_scenario() -> None:
    note_loop()
    async with comsim.Runtime(deterministic=True, seed=0) as rt:
        a = await rt.create_sta("A")
        b = await rt.create_sta("B")
        home, _ = await serve(a, Pinger, IPing)
        _, stream = await serve(b, Pinger, IPing)
        proxy = await a.run(unmarshal(stream))
        await a.run(begin_then_await_ping, proxy, home)


class IRelay(comsim.Interface):
    async def Relay(self) -> str: ...


async def in_a() -> str:
    return "ran in A"


class Relay(comsim.CoClass, IRelay):
    """Its method needs work done in A (``Apartment.run``: a non-COM await, R2)."""

    def __init__(self, home: comsim.Apartment) -> None:
        super().__init__()
        self.home = home

    async def Relay(self) -> str:
        return await self.home.run(in_a)


class HoldRunUnits(comsim.IMessageFilter):
    """R16: no ``Apartment.run`` unit starts while the STA waits in an outgoing call."""

    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           info: Any) -> int:
        return comsim.SERVERCALL_ISHANDLED

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        return -1

    def MessagePending(self, callee_thread: int, tick_count: int, pending_type: int) -> int:
        return comsim.PENDINGMSG_WAITNOPROCESS


async def call_relay(proxy: Any) -> str:
    comsim.CoRegisterMessageFilter(HoldRunUnits())
    return str(await proxy.Relay())


async def cycle_scenario() -> None:
    """A waits (a COM wait) on a call to B; B's method waits on work only A can run, which A's
    message filter holds while A waits: A -> B -> A."""
    note_loop()
    async with comsim.Runtime(deterministic=True, seed=0) as rt:
        a = await rt.create_sta("A")
        b = await rt.create_sta("B")
        _, stream = await serve(b, lambda: Relay(a), IRelay)
        proxy = await a.run(unmarshal(stream))
        await a.run(call_relay, proxy)


async def outside_scenario() -> None:
    """Code in no apartment waits on an event nobody sets."""
    note_loop()
    SEEN["event"] = event = anyio.Event()
    await event.wait()


async def forever_scenario() -> None:
    """``anyio.sleep_forever`` schedules a timer at ``inf``: it never fires."""
    note_loop()
    async with comsim.Runtime(deterministic=True, seed=0):
        await anyio.sleep_forever()


async def inner() -> str:
    return "never"


async def na_code(apt: Any) -> str:
    """NA code: ``Apartment.run`` on the STA whose thread runs it (a non-COM await, R2)."""
    return str(await apt.run(inner))


async def enter_na(rt: Any, apt: Any) -> str:
    return str(await rt.nta.run(na_code, apt))


async def na_on_its_sta_scenario() -> None:
    """A unit of STA A enters the NA (R5: on A's own thread, in A's unit), and the NA code
    awaits ``A.run``: the new unit queues behind the one that waits for it (R2)."""
    note_loop()
    async with comsim.Runtime(deterministic=True, seed=0) as rt:
        a = await rt.create_sta("A")
        await a.run(enter_na, rt, a)


class IGate(comsim.Interface):
    async def Pass(self) -> None: ...


class Gate(comsim.CoClass, IGate):
    """In the MTA: its method tells that B waits in it, then waits until the test opens it."""

    async def Pass(self) -> None:
        SEEN["in gate"].set()
        await SEEN["open"].wait()


class IBack(comsim.Interface):
    async def Back(self) -> None: ...


class Back(comsim.CoClass, IBack):
    """In B: its method waits in a synchronous call to the MTA's gate (a COM wait, R2)."""

    def __init__(self, gate: Any) -> None:
        super().__init__()
        self.gate = gate

    async def Back(self) -> None:
        await self.gate.Pass()


class Legacy(comsim.CoClass, IGate):
    """A class of no threading model: CoCreateInstance makes it in the main STA (R33)."""

    threading_model = None

    async def Pass(self) -> None:
        pass


class HoldAndTell(HoldRunUnits):
    """``HoldRunUnits`` that tells when it held a unit."""

    def MessagePending(self, callee_thread: int, tick_count: int, pending_type: int) -> int:
        SEEN["held"].set()
        return super().MessagePending(callee_thread, tick_count, pending_type)


async def call_back(proxy: Any) -> None:
    comsim.CoRegisterMessageFilter(HoldAndTell())
    await proxy.Back()


async def create() -> None:
    await comsim.CoCreateInstance(Legacy, IGate)


async def creation_scenario() -> None:
    """The main STA A waits in a call to B (a COM wait); B's server of it waits in a call to
    the MTA, and a unit of B starts nested above it (R2) and creates a class of no threading
    model: its unit goes to A (R33), whose MessagePending holds it until A's call ends (R16);
    that call's server resumes only once the unit above it has ended (R2: last in, first
    out): A -> B -> A (fuzz seed 606085, threaded)."""
    note_loop()
    for name in ("in gate", "held", "open"):
        SEEN[name] = anyio.Event()
    async with comsim.Runtime(deterministic=True, seed=0) as rt:
        a = await rt.create_sta("A")  # the first STA: the main STA
        b = await rt.create_sta("B")
        _, gate = await serve(rt.mta, Gate, IGate)
        _, back = await serve(b, lambda: Back(comsim.unmarshal_interface(gate)), IBack)
        proxy = await a.run(unmarshal(back))
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.run, call_back, proxy)
            await SEEN["in gate"].wait()  # A waits in its call, B's server in the gate
            tg.start_soon(b.run, create)
            await SEEN["held"].wait()  # the creation's unit is queued in A
            SEEN["open"].set()  # B's server may go on, but only once the creator has ended
