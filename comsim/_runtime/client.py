"""The client side of a call: the call record, sending, replies, cancel, synchronous calls
(R13, R16, R21-R22, R28, R31, R32).

Every decision is a step of the core's tables (``_core.callobj``, ``_core.stub``); this module
moves the messages those steps ask for and waits where they say.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

import anyio

from .._core import hresult as hr
from .._core import rules
from .._core.callobj import CallMachine, Effect, Input, State, begun
from .._core.hresult import COMError
from .._core.iface import MethodSpec
from .._core.sta import WaitKind
from .._core.stub import CancelReport, Connection, StubCall
from .._core.stub import Effect as StubEffect
from .._core.stub import Input as StubInput
from . import trace
from .boundary import call_hook
from .context import (
    WHERE,
    Where,
)
from .futures import resume
from .hooks import HOOKS
from .stubs import Stub
from .wire import pack, unpack

if TYPE_CHECKING:
    from .apartment import Apartment


class Proxy(Protocol):
    """What a call needs of a proxy (``proxy.Proxy``, which sits above this module)."""

    _stub: Stub
    _apartment: Apartment

    def _check_use(self) -> Apartment: ...

    def QueryInterface(self, iface: type[Any]) -> Any: ...

    def AddRef(self) -> int: ...

    def Release(self) -> int: ...


class CallObject(Protocol):
    """What a reply needs of the call object that owns the call (``callobj.CallObject``,
    which sits above this module)."""

    _call: ClientCall | None
    _event: Any
    _outer: Any


class Reply(NamedTuple):
    """A reply message: an HRESULT and, on success, the packed result."""

    hresult: int
    value: Any = None
    text: str | None = None
    exc: BaseException | None = None
    reject: int | None = None  # SERVERCALL_REJECTED / _RETRYLATER (R16)


#: ``Reply`` from a tuple of its five fields, without a Python ``__new__`` (the hot path's)
_new_reply: Callable[[tuple[Any, ...]], Reply] = functools.partial(tuple.__new__, Reply)


#: where a new request stands on the server side (the core's initial stage)
_WAITING: Final = StubCall().stage


class ClientCall(StubCall):
    """One call from ``Begin_`` (or the start of a synchronous call) to its end.

    It is also the server side's record of the request (a ``StubCall``: ``stage`` and
    ``step`` are where the request stands, R28/R29); ``machine`` is the client's call-object
    state (R21-R28).
    """

    __slots__ = (
        "args",
        "caller_thread",
        "cancel_waiters",
        "cancellable",
        "causality_id",
        "client",
        "grace_handle",
        "id",
        "machine",
        "method",
        "owner",
        "rejected",
        "reply",
        "report",
        "scope",
        "sent_at",
        "server",
        "server_cancelled",
        "spec",
        "stub",
        "sync",
        "tracing",
        "waiters",
    )

    def __init__(self, where: Where, stub: Stub, spec: MethodSpec, args: Any,
                 machine: CallMachine, sync: bool, owner: CallObject | None = None) -> None:
        rt = where.runtime
        self.id = rt._new_call_id()
        # R15: a call made while handling an incoming call carries its causality id
        self.causality_id = (where.causality_id if where.causality_id is not None
                             else rt._new_causality_id())
        self.spec = spec
        self.method = spec.name
        self.stub = stub
        self.server: Apartment = stub.apartment
        self.client: Apartment = where.apartment
        self.args = args
        self.machine = machine
        self.stage = _WAITING
        self.report: CancelReport | None = None  # made by start_cancel: cancels are rare
        self.reply: Reply | None = None
        self.waiters: list[asyncio.Future[Any]] = []
        self.cancel_waiters: list[asyncio.Future[Any]] | None = None
        self.sync = sync
        self.cancellable = rt._cancel_counts.enabled(where.thread_id)
        self.caller_thread = where.thread_id
        self.sent_at = rt._now()
        self.scope: anyio.CancelScope | None = None
        self.server_cancelled = False
        self.owner = owner
        self.rejected: int | None = None
        self.grace_handle: asyncio.TimerHandle | None = None
        self.tracing = trace.enabled()  # asked once per call: no logging work otherwise

    def __repr__(self) -> str:
        return (f"<call #{self.id} {self.spec.interface.__name__}.{self.method} "
                f"{self.client.name}->{self.server.name} {self.machine.state.value}>")

    def fields(self) -> dict[str, Any]:
        rt = self.client._rt
        return {"call_id": self.id, "causality_id": self.causality_id, "method": self.method,
                "client": self.client.name, "server": self.server.name,
                "t": rt._now() - rt._t0}


def _send(call: ClientCall) -> None:
    if call.tracing:
        trace.emit("call.sent", **call.fields())
    if not call.server._post(HOOKS.on_request, call.server, call):
        # the server apartment has gone (R18): the answer comes back at once
        on_reply(call, Reply(hr.RPC_E_DISCONNECTED,
                             text=f"apartment {call.server.name!r} has shut down"))


def _wake(call: ClientCall, value: Any) -> None:
    """Wake the tasks that wait for ``call`` (in this loop turn where ``resume`` can)."""
    waiters, call.waiters = call.waiters, []
    for fut in waiters:
        resume(fut, value)


# --------------------------------------------------------------------------- replies
def on_reply(call: ClientCall, reply: Reply) -> None:
    """A reply message is taken in by the client apartment (never a unit: R2)."""
    machine = call.machine
    owner = call.owner
    if owner is not None and owner._call is not call:
        _trace_dropped(call, reply, "call object began another call")
        return
    rejected = reply.reject is not None
    if rejected and machine.state is State.PENDING:
        call.rejected = reply.reject
        _wake(call, "rejected")
        return
    effect = machine.step(Input.REPLY_CANCELED if rules.is_cancel_reply(reply.hresult, rejected)
                          else Input.REPLY)[0]
    if effect is Effect.COMPLETE:
        call.reply = reply
        _ended(call, False)
    elif effect is Effect.COMPLETE_CANCELLED:
        _ended(call, cancelled=True)
    elif effect is Effect.DROP:
        _trace_dropped(call, reply, machine.state.value)


def _trace_dropped(call: ClientCall, reply: Reply, why: str) -> None:
    if call.tracing or trace.enabled():
        trace.emit("call.reply_dropped", **call.fields(), hresult=reply.hresult, reason=why)


def _ended(call: ClientCall, cancelled: bool) -> None:
    """The call has ended: signal the call object's event, then ``outer.Signal()`` (R23,
    R24), then wake whoever waits for the call (also if a signal or the trace raised)."""
    try:
        _end_grace(call, hr.S_OK if cancelled else hr.RPC_E_CALL_COMPLETE)
        if cancelled:
            with call.client._rt._lock:
                assert call.report is not None  # a call ends cancelled only after start_cancel
                due = call.report.note_client_ended()
            if due is not None and call.tracing:
                trace.emit("call.cancelled", **call.fields(), hresult=hr.RPC_E_CALL_CANCELED,
                           stage=due)
        owner = call.owner
        if owner is not None:
            owner._event.Signal()
            outer = owner._outer
            if outer is not None:
                _signal_outer(call, outer)
    finally:
        # last: a waiter may go on at once (``resume``), and must find all of the above done
        _wake(call, True)


def _signal_outer(call: ClientCall, outer: Any) -> None:
    """R24: ``outer.Signal()`` once, on the client's loop, with the client apartment current."""

    def run() -> None:
        WHERE.set(call.client._home)
        call_hook("call.signal_failed", call.fields(), None, outer.Signal)

    contextvars.Context().run(run)


# --------------------------------------------------------------------------- cancel (R28)
def start_cancel(call: ClientCall, timeout: float | None) -> Any:
    """Cancel ``call`` on its client's loop. Gives an HRESULT, or a future that resolves to one
    when the grace period ends (S_OK) or the call completes meanwhile (RPC_E_CALL_COMPLETE)."""
    rt = call.client._rt
    machine = call.machine
    with rt._lock:
        if call.report is None:
            call.report = CancelReport()
        if machine.state is State.PENDING:
            claim = call.step(StubInput.CANCEL)
            inp = Input.CANCEL_QUEUED if claim is StubEffect.DROPPED_QUEUED else Input.CANCEL
        else:
            inp = Input.CANCEL
        effect, _state, code = machine.step(inp)
    if effect is Effect.STATUS or effect is Effect.NOTHING:
        return code
    if call.tracing:
        trace.emit("call.cancel_requested", **call.fields())
    if effect is Effect.COMPLETE_CANCELLED:  # never dispatched (R29 `queued`)
        with rt._lock:
            call.report.note_stage("queued")  # made above, under the same lock
        _ended(call, cancelled=True)
        return hr.S_OK
    # TELL_SERVER: the server learns at once (R30); the call waits up to `timeout`
    call.server._post(HOOKS.on_cancel, call.server, call)
    if timeout == 0:
        return grace_expired(call)
    loop = call.client._loop
    fut = loop.create_future()
    if call.cancel_waiters is None:
        call.cancel_waiters = []
    call.cancel_waiters.append(fut)
    if timeout is not None:
        call.grace_handle = loop.call_later(timeout, grace_expired, call)
    return fut


def cancel_outgoing(call: ClientCall) -> None:
    """R16: MessagePending answered PENDINGMSG_CANCELCALL: the call is cancelled as
    ``Cancel(0)`` would."""
    start_cancel(call, 0.0)


def grace_expired(call: ClientCall) -> int:
    call.grace_handle = None
    effect, _state, code = call.machine.step(Input.GRACE_EXPIRED)
    if effect is Effect.COMPLETE_CANCELLED:
        _ended(call, cancelled=True)
        return hr.S_OK
    return code if code is not None else hr.S_OK


async def _await_cancel(apt: Apartment, call: ClientCall, pending: Any) -> int:
    """Wait out Cancel's grace period (a COM wait). Cancelling the waiter ends the call
    cancelled at once (R32)."""
    if isinstance(pending, int):
        return pending
    try:
        return int(await apt.com_wait(pending))
    except asyncio.CancelledError:
        grace_expired(call)
        raise


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
    raise COMError(code, f"{type(stub.obj).__name__} in apartment {stub.apartment.name!r} was "
                         "disconnected (CoDisconnectObject) or its apartment shut down; "
                         "nothing was sent")


async def sync_call(proxy: Proxy, spec: MethodSpec, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
    """A synchronous COM call through a proxy (R13), with rejection retries (R16) and
    cancellation (R31, R32)."""
    where = _check_proxy(proxy)
    packed = pack(spec.bind(args, kwargs), spec.arguments_label)
    call = ClientCall(where, proxy._stub, spec, packed, begun(), True)
    apt = where.apartment
    fut = apt._new_future()
    call.waiters.append(fut)
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
        _send(call)
        while True:
            # a COM wait (apt.com_wait, written out: no coroutine made for it)
            w = apt._wait_begins(where, WaitKind.CALL, call.causality_id, call)
            cancelled: BaseException | None = None
            try:
                await fut
            except asyncio.CancelledError as exc:
                cancelled = exc
            if w is not None and not apt._wait_ready(w):
                cancelled = await apt._wait_for_top(w, cancelled)
            if cancelled is not None:
                _abandon(call)
                raise cancelled
            if call.rejected is None:
                break
            if not await _retry(apt, call):
                break
            fut = apt._new_future()  # R16: sent again
            call.waiters.append(fut)
            _send(call)
        effect, _state, code = call.machine.step(Input.FINISH)
        return _outcome(call, apt, effect, code)
    finally:
        stack.remove(call)
        if not stack and apt._sched is None:
            # in the MTA each incoming call runs on a simulated thread of its own (R31): its
            # stack goes with its last pending call, so that they do not pile up
            rt._outgoing.pop(where.thread_id, None)


def _abandon(call: ClientCall) -> None:
    """R32: the waiting task was cancelled. A cancellable call is cancelled as Cancel(0);
    otherwise, or when the caller's apartment is shutting down (R18), the server runs on and
    its reply is dropped."""
    if call.machine.ended:
        return
    if call.cancellable and not call.client._closing:
        start_cancel(call, 0.0)
    else:  # not cancellable, or the caller's apartment is shutting down (R18: abandoned)
        call.machine.step(Input.RELEASE)
        # a Cancel or CoCancelCall waiting out its grace period learns that the call has
        # ended: it will get no reply now (R18: nothing hangs)
        _end_grace(call, hr.RPC_E_CALL_COMPLETE)


def _end_grace(call: ClientCall, status: int) -> None:
    """End the grace period of a cancel in progress: its waiters get ``status``."""
    if call.grace_handle is not None:
        call.grace_handle.cancel()
        call.grace_handle = None
    cws = call.cancel_waiters
    if cws is not None:
        call.cancel_waiters = None
        for fut in cws:
            if not fut.done():
                fut.set_result(status)


async def _retry(apt: Apartment, call: ClientCall) -> bool:
    """R16: a rejected call; the caller's filter decides. True: resend."""
    reject_type = call.rejected
    call.rejected = None
    flt = apt._filter
    answer = None
    if flt is not None:
        tick = apt._rt._ticks_since(call.sent_at)
        callee = call.server.thread_id
        # a faulty filter gives up, as a negative answer would
        answer = apt._ask_hook(-1, flt.RetryRejectedCall, callee, tick, reject_type)
    retry, delay = rules.caller_retry(answer)
    if retry and delay:
        await apt.com_wait(apt.new_future(), WaitKind.OTHER, timeout=delay)
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
    return unpack(reply.value, apt, call.spec.result_label)
