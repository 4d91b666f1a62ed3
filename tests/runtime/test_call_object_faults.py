"""Call objects under races the reviewers found (R16, R21, R22, R25, R26, R28, R32): two
``Finish_`` on one call, a last Release while something waits for the call, a cancelled
``Finish_`` during another ``Cancel``'s grace period, the causality id of a wait for a call, and a
server call object whose ``Begin_`` is ``async def``. Each ends in a COM outcome, never a hang.

Interleavings are forced with free-threaded ManualResetEvents passed in the call arguments and
with anyio events between the client's tasks; a cooperative server polls CoTestCancel (R30).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr

from .. import helpers
from ..helpers import drain, hresult_of, new_call, until_cancelled

INFINITE = comsim.INFINITE
NO_LIMIT = comsim.RPC_C_CANCEL_INFINITE_TIMEOUT


class IFault(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Gated(self, gate: Any, a: int) -> int: ...
    async def Ignore(self, started: Any, saw: Any, release: Any) -> str: ...


AsyncIFault = comsim.async_interface(IFault)


class Coop(comsim.CoClass, IFault):
    """A cooperative server (R30): a cancel reaches it only through CoTestCancel."""

    cancel_policy = "cooperative"

    def __init__(self) -> None:
        super().__init__()
        self.done = comsim.ManualResetEvent()

    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Gated(self, gate: Any, a: int) -> int:
        await gate.Wait(0, INFINITE)
        return a

    async def Ignore(self, started: Any, saw: Any, release: Any) -> str:
        """Sees the cancel, then goes on regardless until ``release``."""
        started.Signal()
        await until_cancelled()
        saw.Signal()
        await release.Wait(0, INFINITE)
        self.done.Signal()
        return "late"


async def served(rt: comsim.Runtime) -> tuple[Coop, comsim.MarshalStream]:
    """A ``Coop`` in a new STA "srv", marshalled for IFault."""
    srv = await rt.create_sta("srv")
    return await helpers.serve(srv, Coop, IFault)


# --------------------------------------------------------------------------- R21, R22
@pytest.mark.asyncio
async def test_concurrent_finish_of_a_call_finished_meanwhile(rt: comsim.Runtime) -> None:
    # R21 R22: tasks B then A wait in Finish_ on one call; the reply wakes both; B takes the
    # result, begins again and finishes. A's call was finished by B: RPC_E_CALL_COMPLETE
    # (before, A waited on the old call for ever)
    _obj, stream = await served(rt)
    gate = comsim.ManualResetEvent()

    async def client() -> dict[str, Any]:
        call = new_call(comsim.unmarshal_interface(stream), AsyncIFault)
        call.Begin_Gated(gate, 3)
        out: dict[str, Any] = {}
        b_in, a_in = anyio.Event(), anyio.Event()

        async def b() -> None:
            b_in.set()  # set in the step that enters Finish_
            out["b1"] = await call.Finish_Gated()
            call.Begin_Gated(gate, 30)  # at once, in the same step
            out["b2"] = await call.Finish_Gated()

        async def a() -> None:
            a_in.set()
            out["a"] = await hresult_of(call.Finish_Gated())

        async with anyio.create_task_group() as tg:
            tg.start_soon(b)
            await b_in.wait()
            tg.start_soon(a)
            await a_in.wait()
            gate.Signal()
        return out

    out = await rt.mta.run(client)
    assert out == {"b1": 3, "b2": 30, "a": hr.RPC_E_CALL_COMPLETE}


# --------------------------------------------------------------------------- R25, R28
@pytest.mark.asyncio
async def test_last_release_ends_a_cancels_grace_period(rt: comsim.Runtime) -> None:
    # R25 R28: Cancel(no limit) waits for a server that ignores it; the last Release of the
    # call object ends the wait at once: no call in progress any more, RPC_E_CALL_COMPLETE.
    # The server runs on, its reply is dropped (before, Cancel waited for ever)
    obj, stream = await served(rt)
    started, saw, release = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> list[int]:
        call = new_call(comsim.unmarshal_interface(stream), AsyncIFault)
        call.Begin_Ignore(started, saw, release)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        await started.Wait(0, INFINITE)
        got: list[int] = []

        async def canceller() -> None:
            got.append(await cancel.Cancel(NO_LIMIT))

        async with anyio.create_task_group() as tg:
            tg.start_soon(canceller)
            await saw.Wait(0, INFINITE)  # the server was told: Cancel is in its grace period
            assert call.Release() == 1
            assert cancel.Release() == 0  # the last reference (R25: allowed)
        return got

    assert await rt.mta.run(client) == [hr.RPC_E_CALL_COMPLETE]
    release.Signal()
    await obj.done.Wait(0, INFINITE)  # R25: the server ran to its end


@pytest.mark.asyncio
async def test_last_release_while_finish_waits(rt: comsim.Runtime) -> None:
    # R25: a task waits in Finish_ when another lets go of the last reference: Finish_ gives
    # what it gives on a released call object (E_FAIL) at once, without cancelling the call;
    # the server runs on and its reply is dropped (before, Finish_ waited for ever)
    _obj, stream = await served(rt)
    gate = comsim.ManualResetEvent()

    async def client() -> int:
        call = new_call(comsim.unmarshal_interface(stream), AsyncIFault)
        call.Begin_Gated(gate, 7)
        got: list[int] = []
        entered = anyio.Event()

        async def finisher() -> None:
            entered.set()  # enters Finish_ in this same step
            got.append(await hresult_of(call.Finish_Gated()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(finisher)
            await entered.wait()
            assert call.Release() == 0  # the last reference (R25)
        return got[0]

    assert await rt.mta.run(client) == hr.E_FAIL
    gate.Signal()  # the call was never cancelled: the server finishes it


# --------------------------------------------------------------------------- R32
@pytest.mark.asyncio
async def test_finish_cancelled_during_another_cancels_grace(rt: comsim.Runtime) -> None:
    # R32: task A waits in Cancel(no limit) for a server that ignores it; task B, in Finish_,
    # is cancelled. The call ends cancelled at once (A's Cancel gives S_OK) and Finish_'s
    # clean-up leaves the call object idle: TestCancel RPC_E_CALL_COMPLETE, Begin_ S_OK
    # (before, the call object stayed CANCELLING: Begin_ gave RPC_E_CALL_PENDING)
    _obj, stream = await served(rt)
    started, saw, release = (comsim.ManualResetEvent() for _ in range(3))

    async def client() -> tuple[Any, ...]:
        call = new_call(comsim.unmarshal_interface(stream), AsyncIFault)
        call.Begin_Ignore(started, saw, release)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        await started.Wait(0, INFINITE)
        fin_scope = anyio.CancelScope()
        got: list[int] = []
        finished = anyio.Event()

        async def canceller() -> None:
            got.append(await cancel.Cancel(NO_LIMIT))

        async def finisher() -> None:
            with fin_scope:
                await call.Finish_Ignore()
            finished.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(finisher)
            tg.start_soon(canceller)
            await saw.Wait(0, INFINITE)  # the cancel is in its grace period
            fin_scope.cancel()  # R32: cancel the task awaiting Finish_
            await finished.wait()
            tested = cancel.TestCancel()
            began = call.Begin_Add(1, 2)
        release.Signal()  # the old call's late reply is dropped
        return got, tested, began, await call.Finish_Add()

    got, tested, began, result = await rt.mta.run(client)
    assert got == [hr.S_OK]  # the call ended cancelled
    assert (tested, began, result) == (hr.RPC_E_CALL_COMPLETE, hr.S_OK, 3)


@pytest.mark.deterministic_only
@pytest.mark.asyncio
async def test_grace_timer_of_an_ended_cancel_never_fires(rt: comsim.Runtime) -> None:
    # R28 R32: Cancel(1) of the first call is in its grace period when the task in Finish_ is
    # cancelled: the call ends cancelled at once, and the grace timer goes with it. A second
    # call on the call object, cancelled with no limit past that second (virtual time),
    # completes with its own reply: the old timer did not end it cancelled
    # in the MTA: the second call runs beside the first, which ignores its cancel
    _obj, stream = await helpers.serve(rt.mta, Coop, IFault)
    s1, saw1, release1, s2, saw2, release2 = (comsim.ManualResetEvent() for _ in range(6))
    cli = await rt.create_sta("cli")

    async def client() -> tuple[Any, ...]:
        call = new_call(comsim.unmarshal_interface(stream), AsyncIFault)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        call.Begin_Ignore(s1, saw1, release1)
        await s1.Wait(0, INFINITE)
        fin_scope = anyio.CancelScope()
        got: list[int] = []

        async def canceller() -> None:
            got.append(await cancel.Cancel(1))

        async def finisher() -> None:
            with fin_scope:
                await call.Finish_Ignore()

        async with anyio.create_task_group() as tg:
            tg.start_soon(finisher)
            tg.start_soon(canceller)
            await saw1.Wait(0, INFINITE)
            fin_scope.cancel()
        call.Begin_Ignore(s2, saw2, release2)
        await s2.Wait(0, INFINITE)
        second: list[int] = []

        async def cancel_second() -> None:
            second.append(await cancel.Cancel(NO_LIMIT))

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_second)
            await saw2.Wait(0, INFINITE)
            await anyio.sleep(2)  # past the first Cancel's second (virtual time)
            release2.Signal()  # the second call's reply: "late", not RPC_E_CALL_CANCELED
        return got, second, await call.Finish_Ignore()

    got, second, result = await cli.run(client)
    assert got == [hr.S_OK]
    assert (second, result) == ([hr.RPC_E_CALL_COMPLETE], "late")
    release1.Signal()


# --------------------------------------------------------------------------- R15, R16
class ICallback(comsim.Interface):
    async def Bounce(self, target: Any, started: Any) -> int: ...


class IRelay(comsim.Interface):
    async def Go(self, how: str, bouncer: Any, me: Any) -> int: ...


AsyncICallback = comsim.async_interface(ICallback)


class Bouncer(comsim.CoClass, ICallback):
    """Calls back into its caller's STA, on behalf of the caller's call (R15); cooperative, so
    that with a cancel it first waits to be told (R30)."""

    cancel_policy = "cooperative"
    after_cancel = False

    async def Bounce(self, target: Any, started: Any) -> int:
        started.Signal()
        if self.after_cancel:
            await until_cancelled()
        return int(await target.Add(40, 2))


class Relay(comsim.CoClass, IRelay):
    """Begins Bounce on B and waits for it in Finish_, ISynchronize.Wait or Cancel's grace."""

    async def Go(self, how: str, bouncer: Any, me: Any) -> int:
        call = new_call(bouncer, AsyncICallback)
        started = comsim.ManualResetEvent()
        call.Begin_Bounce(me, started)
        try:
            if how == "wait":
                sync = call.QueryInterface(comsim.ISynchronize)
                assert await sync.Wait(0, INFINITE) == hr.S_OK
                sync.Release()
            elif how == "cancel":
                await started.Wait(0, INFINITE)
                cancel = call.QueryInterface(comsim.ICancelMethodCalls)
                assert await cancel.Cancel(NO_LIMIT) == hr.RPC_E_CALL_COMPLETE
                cancel.Release()
            return int(await call.Finish_Bounce())
        finally:
            call.Release()


class Recorder(comsim.IMessageFilter):
    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           interface_info: Any) -> int:
        self.seen.append((call_type, interface_info[1]))
        return comsim.SERVERCALL_ISHANDLED

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        return -1

    def MessagePending(self, callee_thread: int, tick_count: int, pending_type: int) -> int:
        return comsim.PENDINGMSG_WAITDEFPROCESS


@pytest.mark.parametrize("how", ["finish", "wait", "cancel"])
@pytest.mark.asyncio
async def test_callback_during_a_wait_for_a_call_is_nested(rt: comsim.Runtime,
                                                           how: str) -> None:
    # R16 R15: STA A handles Go (causality X), begins Bounce on B and waits for it (Finish_,
    # ISynchronize.Wait on the call object, or Cancel's grace period: COM waits for that call,
    # R2); B calls back into A with X: A's filter sees CALLTYPE_NESTED (before, the wait had
    # no causality id: CALLTYPE_TOPLEVEL_CALLPENDING)
    a = await rt.create_sta("A")
    b = await rt.create_sta("B")
    c = await rt.create_sta("C")
    flt = Recorder()
    _relay, relay_s = await helpers.serve(a, Relay, IRelay, message_filter=flt)
    _calc, calc_s = await helpers.serve(a, helpers.Calc, helpers.ICalc,
                                        flags=comsim.MSHLFLAGS.TABLESTRONG)

    def make_bouncer() -> Bouncer:
        bouncer = Bouncer()
        bouncer.after_cancel = how == "cancel"
        return bouncer

    _bouncer, bouncer_s = await helpers.serve(b, make_bouncer, ICallback,
                                              flags=comsim.MSHLFLAGS.TABLESTRONG)

    async def from_c() -> int:
        relay = comsim.unmarshal_interface(relay_s)
        return int(await relay.Go(how, comsim.unmarshal_interface(bouncer_s),
                                  comsim.unmarshal_interface(calc_s)))

    assert await c.run(from_c) == 42
    assert flt.seen == [(comsim.CALLTYPE_TOPLEVEL, "Go"), (comsim.CALLTYPE_NESTED, "Add")]


# --------------------------------------------------------------------------- R26
class ISlowSum(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...


AsyncISlowSum = comsim.async_interface(ISlowSum)


class AsyncBeginCall(comsim.ServerCall, AsyncISlowSum):
    """A server call object whose Begin_ and Finish_ are both ``async def`` (R26)."""

    async def Begin_Add(self, a: int, b: int) -> int:  # type: ignore[override]
        self.result = a + b
        self.outer.Signal()
        return hr.S_OK

    async def Finish_Add(self) -> int:  # type: ignore[override]
        return self.result


class AsyncBeginSum(comsim.CoClass, ISlowSum, comsim.ICallFactory):
    def CreateCall(self, async_iface: Any, outer: Any = None) -> Any:
        return AsyncBeginCall(outer)

    async def Add(self, a: int, b: int) -> int:  # never called: the call object is used
        raise AssertionError("called synchronously")


@pytest.mark.asyncio
async def test_server_call_object_with_async_begin(rt: comsim.Runtime) -> None:
    # R26: the stub awaits an async Begin_ as it awaits an async Finish_; the client's
    # synchronous call and its call object both get the result (before, the coroutine was
    # dropped unrun and the call hung)
    p = await helpers.pair(rt, AsyncBeginSum, ISlowSum)

    async def client() -> tuple[int, int]:
        call = new_call(p.proxy, AsyncISlowSum)
        call.Begin_Add(20, 22)
        return int(await p.proxy.Add(1, 2)), int(await call.Finish_Add())

    assert await p.client.run(client) == (3, 42)
    await drain(rt, p.server, p.client)


@pytest.mark.asyncio
async def test_a_method_the_call_object_lacks_is_e_invalidarg_as_on_a_proxy(
        rt: comsim.Runtime) -> None:
    # R20: a call object has Begin_/Finish_ for its interface's methods only; asking for
    # another fails as a proxy does (E_INVALIDARG, also an AttributeError). Before, a plain
    # AttributeError
    p = await helpers.pair(rt)

    async def use() -> tuple[int, bool, bool]:
        call = new_call(p.proxy, comsim.async_interface(helpers.ICalc))
        try:
            call.Begin_Nope()
        except comsim.COMError as exc:
            return exc.hresult, isinstance(exc, AttributeError), hasattr(call, "Finish_Nope")
        return hr.S_OK, False, True

    assert await p.client.run(use) == (hr.E_INVALIDARG, True, False)
