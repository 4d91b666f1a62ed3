"""Synchronous calls through a proxy, client side (R12, R13, R16, R31, R32): checks, the
request, the COM wait for the reply, rejection retries, abandoning a call, the outcome.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

from .._core import decide, rules
from .._core import hresult as hr
from .._core.callobj import BEGUN, CallMachine, Effect, Input, State
from .._core.callobj import TABLE as CALL_TABLE
from .._core.decide import Reaction, Waiter
from .._core.hresult import COMError
from .._core.iface import MethodSpec
from .._core.messages import Reply
from .._core.sta import Wait, WaitKind
from .._core.stub import Connection
from . import trace
from .cancel import start_cancel
from .context import (
    UNDER,
    WHERE,
    Where,
)
from .hooks import HOOKS
from .inline import call_neutral
from .record import (
    ClientCall,
    Proxy,
    _end_grace,
    _refused,
    _send,
    add_waiter,
    drop_reply,
    on_reply,
)
from .stubs import _stub_lock
from .wire import SCALARS, Packed, discard, pack, unpack

if TYPE_CHECKING:
    from .apartment import Apartment

# enum members the hot path compares against, read once: an enum class's attribute costs a
# Python ``__getattr__`` hook on every read (``EnumType``)
_CONNECTED: Final = Connection.CONNECTED
_CALL_WAIT: Final = WaitKind.CALL
_DELIVER: Final = Effect.DELIVER
#: ``CALL_TABLE``'s FINISH rows by state (a synchronous call's ``machine.step(Input.FINISH)``)
_ON_FINISH: Final = {state: row for (state, inp), row in CALL_TABLE.items()
                     if inp is Input.FINISH}

# --------------------------------------------------------------------------- sync calls
def _check_proxy(proxy: Proxy) -> Where:
    w = WHERE.get()
    if w is None or w.apartment is not proxy._apartment or not proxy._apartment._accepting:
        proxy._check_use()
    assert w is not None
    stub = proxy._stub
    if stub.conn is Connection.CONNECTED and stub.apartment._accepting:
        return w
    code = rules.call_target_status(stub.conn is Connection.CONNECTED,
                                    stub.conn is Connection.DISCONNECTING,
                                    stub.apartment._accepting)
    raise COMError(code, f"{type(stub.obj).__name__} in apartment {stub.apartment.name!r} is "
                         "not connected: it was disconnected (CoDisconnectObject), its "
                         "apartment shut down, or this proxy was unmarshalled from released "
                         "NORMAL marshal data (R7); nothing was sent")


async def sync_call(proxy: Proxy, spec: MethodSpec, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
    """A synchronous COM call through a proxy (R13), with rejection retries (R16) and
    cancellation (R31, R32)."""
    where = WHERE.get()
    stub = proxy._stub
    server = stub.apartment
    if (where is None or where.apartment is not proxy._apartment
            or stub.conn is not _CONNECTED or not server._accepting
            or not where.apartment._accepting):
        where = _check_proxy(proxy)  # (the fast checks above passed the common case)
    if server._neutral:  # R5: a call into the NA runs here, now, on this thread
        return await call_neutral(where, stub, spec, args, kwargs)
    if kwargs or not spec.simple or len(args) != spec.npos:
        args = spec.bind(args, kwargs)  # (else ``bind`` gives ``args`` as they are)
    packed: Any = args
    for value in args:  # ``pack``, written out for a tuple of scalars: it crosses as it is
        if type(value) not in SCALARS:
            packed = pack(args, spec.arguments_label)
            break
    call = ClientCall(where, stub, spec, packed, CallMachine(BEGUN), True)
    home = apt = where.apartment
    if apt._neutral:  # R5: NA code waits as the thread under it does; replies come there
        apt = call.client = home.host()
        where = UNDER.get() or where
        if not apt._accepting:  # R18: shutting down, it would refuse the reply: none is sent
            discard(packed)  # R7: never unpacked
            raise COMError(hr.RPC_E_DISCONNECTED, f"NA code on apartment {apt.name!r} called "
                           f"{spec.name} while that apartment shuts down, which would take in no "
                           "reply; nothing was sent")
    fut = apt._new_future()
    call.waiters = [fut]  # (the call's first waiter: it was made just above)
    rt = where.runtime
    # R31: the thread's pending outgoing calls; a call is pending (CoCancelCall finds it,
    # from any thread) before it is sent
    stack = rt._outgoing.get(where.thread_id)
    if stack is None:
        stack = rt._outgoing[where.thread_id] = []
    stack.append(call)
    try:
        # sent as soon as it is made: the COM wait's bookkeeping overlaps the server's work
        # (and, with the two apartments on two CPUs, the wake-up of the server's thread)
        if call.tracing:
            _send(call)
        else:  # ``_send``, written out (and its ``holds``)
            lock = _stub_lock
            lock.acquire()
            try:
                stub.life.requests += 1
            finally:
                lock.release()
            call.holds = True
            server = call.server
            if not server._post(HOOKS.on_request, server, call):
                _refused(call)
        sched = apt._sched
        unit = where.unit if where.apartment is apt else None
        abandoned = False
        while True:
            # a COM wait (apt.com_wait, written out: no coroutine made for it; and its
            # ``_wait_begins`` and ``_wait_ready`` too)
            w = None
            if sched is not None and unit is not None and unit in sched.stack:
                if sched.queue:
                    w, actions = sched.begin_wait(unit, _CALL_WAIT, call.causality_id, call)
                    if actions:
                        apt._apply(actions)
                else:  # ``StaScheduler.begin_wait`` with nothing queued, written out
                    w = Wait(unit, _CALL_WAIT, call.causality_id, call)
                    unit.waits.append(w)
            cancelled: BaseException | None = None
            try:
                await fut
            except asyncio.CancelledError as exc:
                cancelled = exc
                _abandon(call)  # R32: at once, not when the unit is on top again (R2)
                abandoned = True
            if w is not None:
                assert sched is not None and unit is not None
                units = sched.stack
                if not w.ready and not sched.queue and units and units[-1] is unit:
                    # ``StaScheduler.wait_ready`` of the unit on top, nothing queued, written out
                    w.ready = w.ended = True
                    unit.waits.remove(w)
                else:
                    actions = sched.wait_ready(w)
                    if actions:
                        apt._apply(actions)
                if not w.ended:
                    cancelled = await apt._wait_for_top(w, cancelled)
            if cancelled is not None:
                if not abandoned:  # (cancelled while it waited to be on top: now)
                    _abandon(call)
                raise cancelled
            if call.rejected is None:
                break
            try:
                resend = await _retry(apt, call)
            except asyncio.CancelledError:  # R32: in the retry delay, as in the wait above
                _abandon(call)
                raise
            if not resend:
                break
            fut = apt._new_future()  # R16: sent again
            add_waiter(call, fut)
            _send(call)
        machine = call.machine  # ``machine.step(Input.FINISH)``, written out
        effect, machine.state, code = _ON_FINISH[machine.state]
        reply = call.reply
        if (effect is _DELIVER and not call.tracing and reply is not None
                and reply.hresult >= 0 and type(reply.value) is not Packed):
            # ``_outcome`` for a successful reply of a plain value, written out
            call.reply = None
            return reply.value
        return _outcome(call, home, effect, code)
    finally:
        stack.remove(call)
        if not stack and apt._sched is None:
            # in the MTA each incoming call runs on a simulated thread of its own (R31): its
            # stack goes with its last pending call, so that they do not pile up
            rt._outgoing.pop(where.thread_id, None)


def _abandon(call: ClientCall) -> None:
    """R32: the waiting task was cancelled. A cancellable call is cancelled as Cancel(0);
    otherwise, or when the caller's apartment is shutting down (R18), the server runs on and
    its reply is dropped. A reply already taken in is never unpacked: its references go (R7)."""
    drop_reply(call)
    reaction = decide.waiter_cancelled(Waiter.SYNC_CALL, ended=call.machine.ended,
                                       cancellable=call.cancellable,
                                       closing=call.client._closing)
    if reaction is Reaction.CANCEL:
        start_cancel(call, 0.0)
    elif reaction is Reaction.ABANDON:  # not cancellable, or the caller's apartment is going
        call.machine.step(Input.RELEASE)
        # a Cancel or CoCancelCall waiting out its grace period learns that the call has
        # ended: it will get no reply now (R18: nothing hangs)
        _end_grace(call, hr.RPC_E_CALL_COMPLETE)


async def _retry(apt: Apartment, call: ClientCall) -> bool:
    """R16: a rejected call; the caller's filter decides. True: resend. A call not sent again
    (given up, cancelled meanwhile, or its waiter cancelled) never has its arguments unpacked:
    their references go (R7)."""
    resend = False
    try:
        resend = await _ask_retry(apt, call)
    finally:
        if not resend:
            discard(call.args)
    return resend


async def _ask_retry(apt: Apartment, call: ClientCall) -> bool:
    reject_type = call.rejected
    call.rejected = None
    if call.machine.state is not State.PENDING:
        return False  # cancelled before its caller was back on top (R2): nothing to retry
    flt = apt._filter
    answer = None
    if flt is not None:
        tick = apt._rt._ticks_since(call.sent_at)
        callee = call.server.thread_id
        # a faulty filter gives up, as a negative answer would
        answer = apt._ask_hook(-1, flt.RetryRejectedCall, callee, tick, reject_type)
    retry, delay = rules.caller_retry(answer)
    if retry and delay:
        # still in the outgoing call: a COM wait on it (R16: MessagePending is asked, and
        # CANCELCALL cancels it), which a cancel that ends the call meanwhile ends (R28, R31)
        fut = apt.new_future()
        add_waiter(call, fut)
        await apt.com_wait(fut, _CALL_WAIT, call.causality_id, call, timeout=delay)
    if call.machine.state is not State.PENDING:
        return False  # cancelled meanwhile
    if not retry:
        on_reply(call, Reply(hr.RPC_E_CALL_REJECTED,
                             text=f"{call.server.name!r} rejected the call and the caller's "
                                  "message filter gave up"))
        return False
    return True


def _outcome(call: ClientCall, apt: Apartment, effect: Effect, code: int | None) -> Any:
    """What Finish_ (or a synchronous call) gives once the FINISH step is taken (R22): the
    result, or the failure raised."""
    if effect is Effect.RAISE_CANCELLED:
        if call.tracing:
            trace.emit("call.completed", **call.fields(), hresult=hr.RPC_E_CALL_CANCELED)
        raise COMError(hr.RPC_E_CALL_CANCELED,
                       f"{call.spec.interface.__name__}.{call.method} was cancelled; there is no "
                       "guarantee the server stopped (it may have done its work)")
    if effect is Effect.REFUSE:
        raise COMError(code or hr.E_FAIL, f"Finish_{call.method}: no call in progress")
    reply = call.reply
    assert reply is not None
    call.reply = None
    if call.tracing:
        trace.emit("call.completed", **call.fields(), hresult=reply.hresult)
    if reply.hresult < 0:
        raise COMError(reply.hresult, reply.text) from reply.exc
    value = reply.value
    return value if type(value) is not Packed else unpack(value, apt, call.spec.result_label)
