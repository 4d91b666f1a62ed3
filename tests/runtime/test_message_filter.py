"""Message filters (R16): registration, HandleInComingCall, RetryRejectedCall, MessagePending."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

import pytest

import comsim
from comsim import hresult

from ..helpers import ICalc, pair, serve
from ..helpers import thread_id as tid


class IRelay(comsim.Interface):
    async def CallBack(self, target: Any) -> int: ...
    async def Block(self, entered: Any, release: Any) -> str: ...


class Calc(comsim.CoClass, ICalc):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def Add(self, a, b):
        self.calls += 1
        return a + b


class Relay(comsim.CoClass, IRelay):
    async def CallBack(self, target):
        # a call back into the apartment that called us: same causality id
        return await target.Add(20, 22)

    async def Block(self, entered, release):
        entered.Signal()
        await release.Wait(0, comsim.INFINITE)
        return "released"


class Filter(comsim.IMessageFilter):
    """Records every call; answers from scripted lists (the last answer repeats)."""

    def __init__(self, incoming: list[int] | None = None, retry: list[int] | None = None,
                 pending: list[int] | None = None, on_incoming: Any = None,
                 on_pending: Any = None) -> None:
        self.incoming_answers = incoming or [comsim.SERVERCALL_ISHANDLED]
        self.retry_answers = retry or [-1]
        self.pending_answers = pending or [comsim.PENDINGMSG_WAITDEFPROCESS]
        self.incoming: list[tuple[int, int, int, Any]] = []
        self.retries: list[tuple[int, int, int]] = []
        self.pendings: list[tuple[int, int, int]] = []
        self.on_incoming = on_incoming  # an event to Signal on each HandleInComingCall
        self.on_pending = on_pending

    @staticmethod
    def _pick(answers: list[int], n: int) -> int:
        return answers[min(n, len(answers) - 1)]

    def HandleInComingCall(self, call_type, caller_thread, tick_count, interface_info):
        answer = self._pick(self.incoming_answers, len(self.incoming))
        self.incoming.append((call_type, caller_thread, tick_count, interface_info))
        if self.on_incoming is not None:
            self.on_incoming.Signal()
        return answer

    def RetryRejectedCall(self, callee_thread, tick_count, reject_type):
        answer = self._pick(self.retry_answers, len(self.retries))
        self.retries.append((callee_thread, tick_count, reject_type))
        return answer

    def MessagePending(self, callee_thread, tick_count, pending_type):
        answer = self._pick(self.pending_answers, len(self.pendings))
        self.pendings.append((callee_thread, tick_count, pending_type))
        if self.on_pending is not None:
            self.on_pending.Signal()
        return answer


def registrar(flt: Any) -> Callable[[], Any]:
    async def register() -> Any:
        return comsim.CoRegisterMessageFilter(flt)

    return register


async def calc_server(rt: comsim.Runtime, flt: Filter | None) -> tuple[comsim.Apartment, Any, Any]:
    """An STA 'srv' with a Calc and (optionally) a message filter; gives (srv, obj, stream)."""
    srv = await rt.create_sta("srv")
    obj, stream = await serve(srv, Calc, ICalc, flags=comsim.MSHLFLAGS.TABLESTRONG,
                              message_filter=flt)
    return srv, obj, stream


# --------------------------------------------------------------------------- registration
@pytest.mark.asyncio
async def test_register_outside_sta_not_supported(rt: comsim.Runtime) -> None:  # R16
    with pytest.raises(comsim.COMError) as exc:
        comsim.CoRegisterMessageFilter(Filter())  # no apartment
    assert exc.value.hresult == hresult.CO_E_NOT_SUPPORTED
    with pytest.raises(comsim.COMError) as exc:
        await rt.mta.run(registrar(Filter()))
    assert exc.value.hresult == hresult.CO_E_NOT_SUPPORTED


@pytest.mark.asyncio
async def test_register_returns_previous_and_none_unregisters(rt: comsim.Runtime) -> None:  # R16
    sta = await rt.create_sta("s")
    f1, f2 = Filter(), Filter()
    assert await sta.run(registrar(f1)) is None
    assert await sta.run(registrar(f2)) is f1
    assert await sta.run(registrar(None)) is f2
    assert await sta.run(registrar(None)) is None
    other = await rt.create_sta("other")  # filters are per STA
    assert await other.run(registrar(f1)) is None
    assert await sta.run(registrar(f2)) is None


@pytest.mark.asyncio
async def test_unregistered_filter_is_not_consulted(rt: comsim.Runtime) -> None:  # R16
    flt = Filter(incoming=[comsim.SERVERCALL_REJECTED])
    srv, _obj, stream = await calc_server(rt, flt)
    assert await srv.run(registrar(None)) is flt
    cli = await rt.create_sta("cli")

    async def use() -> int:
        return await comsim.unmarshal_interface(stream).Add(1, 2)

    assert await cli.run(use) == 3
    assert flt.incoming == []


# --------------------------------------------------------------------------- HandleInComingCall
@pytest.mark.asyncio
@pytest.mark.parametrize("client_kind", ["sta", "mta"])
async def test_handle_incoming_toplevel_when_idle(
        rt: comsim.Runtime, client_kind: str) -> None:  # R16
    flt = Filter()
    _srv, obj, stream = await calc_server(rt, flt)
    cli = await rt.create_sta("cli") if client_kind == "sta" else rt.mta

    async def use() -> tuple[int, int]:
        return comsim.current_thread_id(), await comsim.unmarshal_interface(stream).Add(1, 2)

    caller_thread, total = await cli.run(use)
    assert total == 3
    assert len(flt.incoming) == 1
    call_type, thread, tick, info = flt.incoming[0]
    assert call_type == comsim.CALLTYPE_TOPLEVEL
    assert thread == caller_thread
    assert tick >= 0
    assert info == (ICalc, "Add")
    assert obj.calls == 1


@pytest.mark.asyncio
async def test_handle_incoming_nested_for_callback(rt: comsim.Runtime) -> None:  # R16
    flt = Filter()
    srv, _obj, stream = await calc_server(rt, flt)
    other = await rt.create_sta("other")

    async def make_relay() -> Any:
        return comsim.marshal_interface(Relay(), IRelay)

    relay_stream = await other.run(make_relay)
    other_thread = await other.run(tid)

    async def use() -> int:
        relay = comsim.unmarshal_interface(relay_stream)
        me = comsim.unmarshal_interface(stream)  # the object itself: we are at home
        return await relay.CallBack(me)

    assert await srv.run(use) == 42
    assert len(flt.incoming) == 1
    call_type, thread, _tick, info = flt.incoming[0]
    assert call_type == comsim.CALLTYPE_NESTED
    assert thread == other_thread
    assert info == (ICalc, "Add")


@pytest.mark.asyncio
async def test_handle_incoming_toplevel_callpending_for_unrelated_call(
        rt: comsim.Runtime) -> None:  # R16
    flt = Filter()
    srv, _obj, stream = await calc_server(rt, flt)
    other = await rt.create_sta("other")
    third = await rt.create_sta("third")

    async def make_relay() -> Any:
        return comsim.marshal_interface(Relay(), IRelay)

    relay_stream = await other.run(make_relay)
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def wait_out() -> str:  # srv waits in an outgoing call to `other`
        return await comsim.unmarshal_interface(relay_stream).Block(entered, release)

    async def unrelated() -> tuple[int, int]:
        return comsim.current_thread_id(), await comsim.unmarshal_interface(stream).Add(3, 4)

    task = asyncio.ensure_future(srv.run(wait_out))
    try:
        assert await entered.Wait(0, comsim.INFINITE) == hresult.S_OK
        third_thread, total = await third.run(unrelated)
        assert total == 7
        assert not task.done()
    finally:
        release.Signal()
    assert await task == "released"
    assert len(flt.incoming) == 1
    call_type, thread, _tick, info = flt.incoming[0]
    assert call_type == comsim.CALLTYPE_TOPLEVEL_CALLPENDING
    assert thread == third_thread
    assert info == (ICalc, "Add")


# --------------------------------------------------------------------------- rejection
@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [comsim.SERVERCALL_REJECTED, comsim.SERVERCALL_RETRYLATER])
async def test_rejected_without_caller_filter_fails_at_once(rt: comsim.Runtime,
                                                            answer: int) -> None:  # R16
    flt = Filter(incoming=[answer])
    _srv, obj, stream = await calc_server(rt, flt)
    cli = await rt.create_sta("cli")

    async def use() -> int:
        return await comsim.unmarshal_interface(stream).Add(1, 2)

    with pytest.raises(comsim.COMError) as exc:
        await cli.run(use)
    assert exc.value.hresult == hresult.RPC_E_CALL_REJECTED
    assert len(flt.incoming) == 1  # no retry
    assert obj.calls == 0  # never dispatched


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [comsim.SERVERCALL_REJECTED, comsim.SERVERCALL_RETRYLATER])
async def test_rejected_caller_filter_gives_up(rt: comsim.Runtime, answer: int) -> None:  # R16
    flt = Filter(incoming=[answer])
    srv, obj, stream = await calc_server(rt, flt)
    srv_thread = await srv.run(tid)
    cli = await rt.create_sta("cli")
    cflt = Filter(retry=[-1])
    await cli.run(registrar(cflt))

    async def use() -> int:
        return await comsim.unmarshal_interface(stream).Add(1, 2)

    with pytest.raises(comsim.COMError) as exc:
        await cli.run(use)
    assert exc.value.hresult == hresult.RPC_E_CALL_REJECTED
    assert len(cflt.retries) == 1
    callee, tick, reject_type = cflt.retries[0]
    assert callee == srv_thread
    assert tick >= 0
    assert reject_type == answer
    assert len(flt.incoming) == 1
    assert obj.calls == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [comsim.SERVERCALL_REJECTED, comsim.SERVERCALL_RETRYLATER])
async def test_rejected_retry_now(rt: comsim.Runtime, answer: int) -> None:  # R16
    # reject the first dispatch, accept the second; the caller retries at once (0-99)
    flt = Filter(incoming=[answer, comsim.SERVERCALL_ISHANDLED])
    _srv, obj, stream = await calc_server(rt, flt)
    cli = await rt.create_sta("cli")
    cflt = Filter(retry=[0])
    await cli.run(registrar(cflt))

    async def use() -> int:
        return await comsim.unmarshal_interface(stream).Add(5, 6)

    assert await cli.run(use) == 11
    assert len(flt.incoming) == 2  # HandleInComingCall again for the retry
    assert [i[3] for i in flt.incoming] == [(ICalc, "Add")] * 2
    assert [r[2] for r in cflt.retries] == [answer]
    assert obj.calls == 1


@pytest.mark.asyncio
async def test_rejected_retry_many_times_no_limit(rt: comsim.Runtime) -> None:  # R16
    flt = Filter(incoming=[comsim.SERVERCALL_RETRYLATER] * 5 + [comsim.SERVERCALL_ISHANDLED])
    _srv, obj, stream = await calc_server(rt, flt)
    cli = await rt.create_sta("cli")
    cflt = Filter(retry=[99])
    await cli.run(registrar(cflt))

    async def use() -> int:
        return await comsim.unmarshal_interface(stream).Add(1, 1)

    assert await cli.run(use) == 2
    assert len(flt.incoming) == 6
    assert len(cflt.retries) == 5
    assert obj.calls == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [comsim.SERVERCALL_REJECTED, comsim.SERVERCALL_RETRYLATER])
async def test_rejected_retry_after_delay(rt: comsim.Runtime, answer: int) -> None:  # R16
    flt = Filter(incoming=[answer, comsim.SERVERCALL_ISHANDLED])
    _srv, obj, stream = await calc_server(rt, flt)
    cli = await rt.create_sta("cli")
    cflt = Filter(retry=[100])
    await cli.run(registrar(cflt))

    async def use() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        total = await comsim.unmarshal_interface(stream).Add(2, 2)
        return total, loop.time() - t0

    total, elapsed = await cli.run(use)
    assert total == 4
    assert elapsed >= 0.095  # waited about 100 ms before retrying
    assert len(flt.incoming) == 2
    assert flt.incoming[1][2] >= 95  # tick_count: ms since the call was first sent
    assert obj.calls == 1


@pytest.mark.asyncio
@pytest.mark.deterministic_only  # a long retry delay is free in virtual time
async def test_retry_delay_is_a_com_wait(rt: comsim.Runtime) -> None:  # R16, R2
    rejected = comsim.ManualResetEvent()
    flt = Filter(incoming=[comsim.SERVERCALL_REJECTED, comsim.SERVERCALL_ISHANDLED],
                 on_incoming=rejected)
    _srv, _obj, stream = await calc_server(rt, flt)
    cli = await rt.create_sta("cli")
    cflt = Filter(retry=[10_000])
    await cli.run(registrar(cflt))
    log: list[str] = []

    async def use() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        total = await comsim.unmarshal_interface(stream).Add(2, 3)
        log.append("call done")
        return total, loop.time() - t0

    async def other_unit() -> None:
        log.append("other unit")

    task = asyncio.ensure_future(cli.run(use))
    assert await rejected.Wait(0, comsim.INFINITE) == hresult.S_OK
    await cli.run(other_unit)  # runs during the delay: the STA is in a COM wait
    assert log == ["other unit"]
    total, elapsed = await task
    assert total == 5
    assert elapsed >= 10.0
    assert log == ["other unit", "call done"]
    assert flt.incoming[1][2] >= 10_000


@pytest.mark.asyncio
async def test_async_calls_dispatched_whatever_filter_answers(rt: comsim.Runtime) -> None:  # R16
    flt = Filter(incoming=[comsim.SERVERCALL_REJECTED])
    _srv, obj, stream = await calc_server(rt, flt)
    cli = await rt.create_sta("cli")

    async def use() -> int:
        proxy = comsim.unmarshal_interface(stream)
        factory = proxy.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(comsim.async_interface(ICalc))
        factory.Release()
        assert call.Begin_Add(4, 5) == hresult.S_OK
        result = await call.Finish_Add()
        call.Release()
        return result

    assert await cli.run(use) == 9
    assert obj.calls == 1


# --------------------------------------------------------------------------- MessagePending
async def _pending_setup(rt: comsim.Runtime, answer: int) -> dict[str, Any]:
    """STA 'cli' (with a filter answering ``answer``) waits in a call to 'srv' that blocks
    until ``release``; then an Apartment.run unit arrives at 'cli'."""
    p = await pair(rt, Relay, IRelay, proxy=False)  # STAs "srv" and "cli"
    srv, cli, stream = p.server, p.client, p.stream
    srv_thread = await srv.run(tid)
    consulted = comsim.ManualResetEvent()
    cflt = Filter(pending=[answer], on_pending=consulted)
    await cli.run(registrar(cflt))
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()
    log: list[str] = []

    async def outgoing() -> None:
        try:
            log.append("call -> " + await comsim.unmarshal_interface(stream).Block(entered,
                                                                                   release))
        except comsim.COMError as exc:
            log.append("call -> " + hresult.name(exc.hresult))

    async def unit() -> None:
        log.append("unit")

    return dict(cli=cli, srv_thread=srv_thread, cflt=cflt, consulted=consulted,
                entered=entered, release=release, log=log, outgoing=outgoing, unit=unit)


@pytest.mark.asyncio
async def test_message_pending_waitdefprocess_lets_unit_in(rt: comsim.Runtime) -> None:  # R16
    s = await _pending_setup(rt, comsim.PENDINGMSG_WAITDEFPROCESS)
    t_call = asyncio.ensure_future(s["cli"].run(s["outgoing"]))
    try:
        await s["entered"].Wait(0, comsim.INFINITE)
        await s["cli"].run(s["unit"])  # starts nested while the call waits
        assert s["log"] == ["unit"]
        assert not t_call.done()
    finally:
        s["release"].Signal()
    await t_call
    assert s["log"] == ["unit", "call -> released"]
    assert len(s["cflt"].pendings) == 1
    callee, tick, pending_type = s["cflt"].pendings[0]
    assert callee == s["srv_thread"]
    assert tick >= 0
    assert pending_type == comsim.PENDINGTYPE_TOPLEVEL


@pytest.mark.asyncio
async def test_message_pending_waitnoprocess_keeps_unit_queued(rt: comsim.Runtime) -> None:  # R16
    s = await _pending_setup(rt, comsim.PENDINGMSG_WAITNOPROCESS)
    t_call = asyncio.ensure_future(s["cli"].run(s["outgoing"]))
    t_unit = None
    try:
        await s["entered"].Wait(0, comsim.INFINITE)
        t_unit = asyncio.ensure_future(s["cli"].run(s["unit"]))
        await s["consulted"].Wait(0, comsim.INFINITE)
        assert s["log"] == []
    finally:
        s["release"].Signal()
    await t_call
    assert t_unit is not None
    await t_unit
    assert s["log"] == ["call -> released", "unit"]  # the unit waited for the call to end
    assert [p[2] for p in s["cflt"].pendings] == [comsim.PENDINGTYPE_TOPLEVEL]
    assert s["cflt"].pendings[0][0] == s["srv_thread"]


@pytest.mark.asyncio
async def test_message_pending_cancelcall_fails_outgoing_call(rt: comsim.Runtime) -> None:  # R16
    s = await _pending_setup(rt, comsim.PENDINGMSG_CANCELCALL)
    with comsim.testing.capture_trace() as events:
        t_call = asyncio.ensure_future(s["cli"].run(s["outgoing"]))
        try:
            await s["entered"].Wait(0, comsim.INFINITE)
            await s["cli"].run(s["unit"])  # cancels the call, then runs once it has ended
            await t_call
        finally:
            s["release"].Signal()
    assert s["log"] == ["call -> RPC_E_CALL_CANCELED", "unit"]
    assert len(events.events("call.cancel_requested", method="Block")) == 1  # as Cancel(0)
    assert [p[2] for p in s["cflt"].pendings] == [comsim.PENDINGTYPE_TOPLEVEL]


# --------------------------------------------------------------------------- many at once
@pytest.mark.asyncio
async def test_hundreds_of_queued_calls_rejected_one_after_another(rt: comsim.Runtime
                                                                   ) -> None:  # R16, R2
    """Calls queued at a busy STA whose filter rejects them: each one ends its unit as it
    starts, and the next starts. Before, each started one Python stack level deeper: 400 of
    them overflowed the stack in the busy unit's ending, whose caller then never had its
    result and the rest of the calls were lost."""
    n = 400
    flt = Filter(incoming=[comsim.SERVERCALL_REJECTED])
    srv, obj, stream = await calc_server(rt, flt)
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    busy, sent = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def block() -> str:  # srv busy in a non-COM await: the calls queue up (R2)
        busy.Signal()
        await asyncio.wrap_future(gate)
        return "block done"

    async def callers() -> list[Any]:
        proxy = comsim.unmarshal_interface(stream)

        async def one(i: int) -> Any:
            try:
                return await proxy.Add(i, i)
            except comsim.COMError as exc:
                return exc.hresult

        tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
        await asyncio.sleep(0)  # a yield, no time: every request is sent
        sent.Signal()
        return list(await asyncio.gather(*tasks))

    blocked = asyncio.ensure_future(srv.run(block))
    await busy.Wait(0, comsim.INFINITE)
    calling = asyncio.ensure_future(rt.mta.run(callers))
    await sent.Wait(0, comsim.INFINITE)
    gate.set_result(None)
    assert await blocked == "block done"
    assert await calling == [hresult.RPC_E_CALL_REJECTED] * n
    assert obj.calls == 0 and len(flt.incoming) == n


# --------------------------------------------------------------------------- the retry delay
async def _rejected_forever(rt: comsim.Runtime, retry: int | list[int],
                            pending: int | None = None
                            ) -> tuple[Any, Filter, Any, comsim.ManualResetEvent]:
    """'srv' rejects every call; 'cli' (its filter answering ``retry``, the last answer
    repeating, and ``pending`` to MessagePending) is given; the event is signalled as
    RetryRejectedCall is asked."""
    asked = comsim.ManualResetEvent()

    class Retrying(Filter):
        def RetryRejectedCall(self, callee_thread, tick_count, reject_type):
            asked.Signal()
            return super().RetryRejectedCall(callee_thread, tick_count, reject_type)

    _srv, _obj, stream = await calc_server(rt, Filter(incoming=[comsim.SERVERCALL_REJECTED]))
    cli = await rt.create_sta("cli")
    cflt = Retrying(retry=retry if isinstance(retry, list) else [retry],
                    pending=[comsim.PENDINGMSG_WAITDEFPROCESS if pending is None else pending])
    await cli.run(registrar(cflt))
    return cli, cflt, stream, asked


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [0xFFFFFFFF, 2**32, 10**400],
                         ids=["DWORD -1", "2**32", "10**400"])
async def test_retry_answers_no_dword_holds_give_up(rt: comsim.Runtime, answer: int) -> None:
    # R16: COM's answer is a DWORD; 0xFFFFFFFF is its -1. Before, 10**400 raised a bare
    # OverflowError out of the proxy call, and 2**32 waited 49 days
    cli, cflt, stream, _asked = await _rejected_forever(rt, answer)

    async def use() -> int:
        return await comsim.unmarshal_interface(stream).Add(1, 2)

    with pytest.raises(comsim.COMError) as info:
        await cli.run(use)
    assert info.value.hresult == hresult.RPC_E_CALL_REJECTED
    assert len(cflt.retries) == 1


@pytest.mark.asyncio
async def test_co_cancel_call_in_the_retry_delay_releases_the_caller(rt: comsim.Runtime
                                                                     ) -> None:  # R16, R31
    # the caller waits in its outgoing call through the delay: a cancel that ends the call
    # ends the delay too (before, the caller slept the whole delay, here 11 days)
    cli, _cflt, stream, asked = await _rejected_forever(rt, 10**9)

    async def call() -> tuple[int, float]:
        comsim.CoEnableCallCancellation()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            await comsim.unmarshal_interface(stream).Add(1, 2)
        except comsim.COMError as exc:
            return exc.hresult, loop.time() - t0
        return hresult.S_OK, loop.time() - t0

    async def cancel() -> int:  # nested on cli while `call` waits (R2)
        return await comsim.CoCancelCall(0, 0)

    calling = asyncio.ensure_future(cli.run(call))
    await asked.Wait(0, comsim.INFINITE)
    assert await cli.run(cancel) == hresult.S_OK
    code, waited = await calling
    assert code == hresult.RPC_E_CALL_CANCELED and waited < 3600


@pytest.mark.asyncio
async def test_cancelling_the_task_in_the_retry_delay_cancels_the_call(rt: comsim.Runtime
                                                                       ) -> None:  # R32, R16
    # as in the wait for the reply: a cancellable call is cancelled as Cancel(0) would; before,
    # the call was left pending for ever, with no cancel and no end
    cli, _cflt, stream, asked = await _rejected_forever(rt, 10**9)

    async def unit() -> str:
        comsim.CoEnableCallCancellation()
        proxy = comsim.unmarshal_interface(stream)
        caller = asyncio.ensure_future(proxy.Add(1, 2))
        await asked.Wait(0, comsim.INFINITE)  # a COM wait of this unit: the caller is in its
        caller.cancel()                       # retry delay
        with pytest.raises(asyncio.CancelledError):
            await caller
        return "unit done"

    with comsim.testing.capture_trace() as events:
        assert await cli.run(unit) == "unit done"
    assert len(events.events("call.cancel_requested", method="Add")) == 1
    assert [e["stage"] for e in events.events("call.cancelled", method="Add")] == ["queued"]


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [comsim.PENDINGMSG_WAITNOPROCESS,
                                    comsim.PENDINGMSG_CANCELCALL])
async def test_message_pending_is_asked_in_the_retry_delay(rt: comsim.Runtime,
                                                           answer: int) -> None:  # R16
    # the delay is part of the outgoing call: a unit arriving then is MessagePending's to
    # decide (before, it started at once and the filter was not asked)
    cli, cflt, stream, asked = await _rejected_forever(  # (WAITNOPROCESS: once, then give up)
        rt, 10**9 if answer == comsim.PENDINGMSG_CANCELCALL else [150, -1], answer)
    log: list[str] = []

    async def call() -> None:
        comsim.CoEnableCallCancellation()
        try:
            await comsim.unmarshal_interface(stream).Add(1, 2)
        except comsim.COMError as exc:
            log.append("call -> " + hresult.name(exc.hresult))

    async def unit() -> None:
        log.append("unit")

    calling = asyncio.ensure_future(cli.run(call))
    await asked.Wait(0, comsim.INFINITE)
    await cli.run(unit)  # kept queued until the call ends (given up, or cancelled)
    await calling
    assert log[-1] == "unit" and len(log) == 2
    assert log[0] == ("call -> RPC_E_CALL_CANCELED" if answer == comsim.PENDINGMSG_CANCELCALL
                      else "call -> RPC_E_CALL_REJECTED")
    assert cflt.pendings[0][2] == comsim.PENDINGTYPE_TOPLEVEL


@pytest.mark.asyncio
async def test_no_filter_is_asked_about_a_call_cancelled_while_queued(rt: comsim.Runtime
                                                                      ) -> None:  # R16, R29
    # HandleInComingCall comes just before a dispatch; a call cancelled while queued has none
    flt = Filter()
    srv, obj, stream = await calc_server(rt, flt)
    cli = await rt.create_sta("cli")
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    busy, started = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def block() -> None:  # srv busy in a non-COM await: the call queues (R2)
        busy.Signal()
        await asyncio.wrap_future(gate)

    async def call() -> int:
        comsim.CoEnableCallCancellation()
        proxy = comsim.unmarshal_interface(stream)
        started.Signal()
        try:
            return await proxy.Add(1, 2)
        except comsim.COMError as exc:
            return exc.hresult

    async def cancel() -> int:
        return await comsim.CoCancelCall(0, 0)

    blocked = asyncio.ensure_future(srv.run(block))
    await busy.Wait(0, comsim.INFINITE)
    with comsim.testing.capture_trace() as events:
        calling = asyncio.ensure_future(cli.run(call))
        await started.Wait(0, comsim.INFINITE)
        assert await cli.run(cancel) == hresult.S_OK
        assert await calling == hresult.RPC_E_CALL_CANCELED
        gate.set_result(None)
        await blocked
        await srv.run(tid)  # after the cancelled call's turn
    assert [e["stage"] for e in events.events("call.cancelled", method="Add")] == ["queued"]
    assert flt.incoming == [] and obj.calls == 0
