"""Calls: synchronous calls through proxies, call objects, events and cancellation (R13-R32).

Every decision is a step of the core's tables (``_core.callobj``, ``_core.stub``); this module
moves the messages those steps ask for and waits where they say.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import anyio

from .._core import hresult as hr
from .._core import rules
from .._core.callobj import CallMachine, Effect, Input, State, begun
from .._core.check import BadArgumentType
from .._core.constants import INFINITE
from .._core.event import EventState
from .._core.hresult import COMError
from .._core.iface import MethodSpec
from .._core.sta import Unit, WaitKind
from .._core.stub import CancelReport, Connection, StubCall, after_disconnect
from .._core.stub import Effect as StubEffect
from .._core.stub import Input as StubInput
from .._objects import (
    ICallFactory,
    ICancelMethodCalls,
    Interface,
    ISynchronize,
    IUnknown,
    _check_interface,
    async_interface,
    is_async_interface,
)
from . import futures, trace
from .boundary import call_hook
from .context import (
    WHERE,
    Where,
    current_runtime,
    new_where,
    outside_thread_id,
    runtime_with_thread,
)
from .futures import call_in_loop, resume, settle
from .wire import pack, unpack

if TYPE_CHECKING:
    from .apartment import Apartment
    from .objref import Proxy, Stub


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
    if not call.server._post(call.server._on_request, call):
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
    if call.grace_handle is not None:
        call.grace_handle.cancel()
        call.grace_handle = None
    try:
        cws = call.cancel_waiters
        if cws is not None:
            call.cancel_waiters = None
            status = hr.S_OK if cancelled else hr.RPC_E_CALL_COMPLETE
            for fut in cws:
                if not fut.done():
                    fut.set_result(status)
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
    call.server._post(call.server._on_cancel, call)
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


_scope_class: type[anyio.CancelScope] | None = None
_Coroutine = types.CoroutineType


def new_scope() -> anyio.CancelScope:
    """A cancel scope of the running anyio backend. ``anyio.CancelScope()`` looks the backend
    up on every call; this looks it up once."""
    global _scope_class
    if _scope_class is None:
        _scope_class = type(anyio.CancelScope())
    return _scope_class()


async def server_task(apt: Apartment, call: ClientCall, unit: Unit | None) -> None:
    """A server task of ``apt``: runs ``call`` and sends its reply (R13, R14, R26, R30), then
    waits to be handed the next call (``Apartment._dispatch``), and so on.

    Reusing server tasks is COM's own model: an STA serves every call on its one thread, and
    the MTA on a pool of RPC threads, so what a method leaves in its thread's context (here,
    context variables) is seen by later calls on that thread. It also spares a task and a
    coroutine per call, and a cancel scope per call: one scope serves call after call until a
    cancel reaches a running ``interrupt``-policy method (R30) and interrupts it; the scope is
    then spent, and the task waits for its next call in a fresh one, so that no interrupt can
    reach a later call.
    """
    task = asyncio.current_task()
    assert task is not None
    rt = apt._rt
    sta = apt._sched is not None
    idle = apt._idle
    new_slot = apt._new_future
    slot: asyncio.Future[tuple[ClientCall, Unit | None]]
    try:
        while True:
            with new_scope() as scope:
                while True:
                    WHERE.set(new_where((rt, apt, unit, call, call.causality_id,
                                         apt.thread_id if sta else rt._new_thread_id())))
                    stub = call.stub
                    stub.running += 1
                    if call.tracing:
                        trace.emit("call.dispatched", **call.fields())
                    obj = stub.obj
                    reply: Reply | None = None
                    try:
                        if rt._faults:
                            fault = rt._fault_for(call.method, apt)
                            if fault is not None:
                                raise fault
                        args = unpack(call.args, apt, call.spec.arguments_label)
                        if stub.call_factory and call.spec.interface is not ICallFactory:
                            done, value = await _via_server_call(apt, call, obj, args)
                            if done:
                                reply = Reply(hr.S_OK, pack(value, call.spec.result_label))
                        if reply is None:
                            fn = getattr(obj, call.method)
                            if rules.interrupts(obj.cancel_policy):
                                # a cancel that reaches the server while the method runs
                                # cancels this scope; once the method has returned, the stage
                                # is `returned` and no cancel touches it (R29)
                                call.scope = scope
                                if call.server_cancelled:  # it came before the method started
                                    scope.cancel()
                            result = fn(*args)
                            if type(result) is _Coroutine or inspect.isawaitable(result):
                                result = await result
                            reply = _new_reply((hr.S_OK, pack(result, call.spec.result_label),
                                                None, None, None))
                    except asyncio.CancelledError as exc:
                        # only a client's cancel (R30) cancels the scope, and only the
                        # apartment's shutdown (R18) the task itself; anything else is the
                        # method's own exception (R14)
                        interrupted = scope.cancel_called
                        code = rules.server_cancel_outcome(
                            interrupted,
                            apt._closing or (not interrupted and task.cancelling() > 0))
                        if code == hr.RPC_E_SERVERFAULT:
                            reply = _fault_reply(obj, call, exc)
                        else:
                            reply = Reply(code, text=(
                                "the server method was interrupted"
                                if code == hr.RPC_E_CALL_CANCELED
                                else f"apartment {apt.name!r} shut down"))
                            raise  # ends the scope (an interrupt) or the task (shutdown)
                    except GeneratorExit:
                        raise  # the coroutine is being closed: nothing more runs
                    except BaseException as exc:  # the fault boundary (``boundary``)
                        reply = _fault_reply(obj, call, exc)
                    finally:
                        stub.running -= 1
                        if stub.conn is Connection.DISCONNECTING:  # R17: the last call ends it
                            stub.conn = after_disconnect(stub.running)
                        if reply is None:  # a BaseException other than a cancel went through
                            reply = Reply(hr.RPC_E_SERVERFAULT,
                                          text="the server task ended abnormally")
                        # R17: the stub is what it will be once the caller has the reply
                        apt._send_reply(call, reply)
                        apt._end_unit(unit)
                    if call.server_cancelled and scope.cancel_called:
                        break  # told to cancel, but the method returned: the scope is spent
                    if not apt._keeps_serving(task):
                        return
                    slot = new_slot()
                    idle.append(slot)
                    try:
                        call, unit = await slot
                    except asyncio.CancelledError:
                        apt._hand_back(slot)
                        raise
            # the scope is spent: the next call is served in a fresh one
            if not apt._keeps_serving(task):
                return
            slot = new_slot()
            idle.append(slot)
            try:
                call, unit = await slot
            except asyncio.CancelledError:
                apt._hand_back(slot)
                raise
    finally:
        apt._done()


def _fault_reply(obj: Any, call: ClientCall, exc: BaseException) -> Reply:
    """R14: the reply for a server method that raised ``exc`` (anything, ``SystemExit``
    included): a COMError's own HRESULT, else RPC_E_SERVERFAULT with the original kept."""
    code = rules.reply_code(exc)
    if isinstance(exc, COMError) and code == exc.hresult:
        return Reply(code, text=exc.text)
    return Reply(code, exc=exc, text=f"{type(obj).__name__}.{call.method} raised "
                                     f"{type(exc).__name__}: {exc}")


async def _via_server_call(apt: Apartment, call: ClientCall, obj: Any,
                           args: tuple[Any, ...]) -> tuple[bool, Any]:
    """R26: the stub drives the server's own call object: Begin_, wait for Signal, Finish_."""
    outer = ManualResetEvent()
    try:
        scall = obj.CreateCall(async_interface(call.spec.interface), outer)
    except COMError as exc:
        if exc.hresult == hr.E_NOINTERFACE:
            return False, None
        raise
    scall._com_incoming = call
    getattr(scall, "Begin_" + call.method)(*args)
    await outer.Wait(0, INFINITE)
    result = getattr(scall, "Finish_" + call.method)()
    if inspect.isawaitable(result):
        result = await result
    return True, result



# --------------------------------------------------------------------------- call objects
class _Facet:
    """An interface of a call object obtained by QueryInterface: shares its count (R25)."""

    _com_kind_ = "facet"

    def __init__(self, owner: CallObject) -> None:
        self._owner = owner

    def QueryInterface(self, iface: type[Any]) -> Any:
        return self._owner.QueryInterface(iface)

    def AddRef(self) -> int:
        return self._owner.AddRef()

    def Release(self) -> int:
        return self._owner.Release()


class _SyncFacet(_Facet, ISynchronize):
    async def Wait(self, flags: int, milliseconds: int) -> int:
        """R23: S_OK once the call has ended, RPC_S_CALLPENDING on time-out (a COM wait)."""
        return await self._owner._event.Wait(flags, milliseconds)

    def Signal(self) -> int:
        return self._owner._event.Signal()

    def Reset(self) -> int:
        return self._owner._event.Reset()


class _CancelFacet(_Facet, ICancelMethodCalls):
    async def Cancel(self, seconds: float) -> int:
        """R28: cancel the call in progress; gives S_OK, RPC_E_CALL_COMPLETE or
        RPC_E_CALL_CANCELED. E_INVALIDARG for a negative time-out."""
        owner = self._owner
        try:
            timeout = rules.cancel_timeout(seconds)
        except ValueError as exc:
            raise COMError(hr.E_INVALIDARG, f"Cancel({seconds!r}): {exc}") from None
        call = owner._call
        if call is None:
            return hr.RPC_E_CALL_COMPLETE
        apt = owner._check()
        return await _await_cancel(apt, call, start_cancel(call, timeout))

    def TestCancel(self) -> int:
        """R28: RPC_S_CALLPENDING, RPC_E_CALL_CANCELED or RPC_E_CALL_COMPLETE."""
        return int(self._owner._machine.step(Input.TEST_CANCEL)[2] or 0)


class CallObject:
    """A client call object for ``AsyncIX`` (R19-R28): ``Begin_M``/``Finish_M``, and through
    QueryInterface ``ISynchronize`` and ``ICancelMethodCalls``."""

    _com_kind_ = "callobj"

    def __init__(self, proxy: Proxy, async_iface: type[Interface], outer: Any) -> None:
        self._proxy = proxy
        self._async_iface = async_iface
        sync_iface = async_iface._com_sync_interface_
        assert sync_iface is not None
        self._iface: type[Interface] = sync_iface
        self._machine = CallMachine()
        self._call: ClientCall | None = None
        self._event = ManualResetEvent()
        self._outer = outer
        self._refs = 1

    def __repr__(self) -> str:
        return (f"<call object {self._async_iface.__name__} on {self._proxy!r} "
                f"{self._machine.state.value}>")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"{self._async_iface.__name__} has no method {name!r}")

    def _check(self) -> Apartment:
        return self._proxy._check_use()

    def _begin(self, spec: MethodSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        self._check()
        if self._machine.state is not State.IDLE:
            _effect, _s, code = self._machine.step(Input.BEGIN)
            what = ("Finish_ has not been called for the previous call; call "
                    f"Finish_{self._call.method if self._call else '?'}() first"
                    if code == hr.RPC_E_CALL_PENDING else "the call object was released")
            raise COMError(code or hr.E_FAIL,
                           f"Begin_{spec.name} on a call object in state "
                           f"{self._machine.state.value}: {what}")
        where = _check_proxy(self._proxy)
        bound = spec.bind(args, kwargs)
        packed = pack(bound, spec.arguments_label)
        self._machine.step(Input.BEGIN)
        self._event.Reset()
        call = ClientCall(where, self._proxy._stub, spec, packed, self._machine, sync=False,
                          owner=self)
        self._call = call
        _send(call)
        return hr.S_OK

    async def _finish(self, spec: MethodSpec) -> Any:
        apt = self._check()
        call = self._call
        if rules.finish_status(self._machine.state is State.IDLE,
                               call.method if call is not None else None, spec.name):
            assert call is not None
            raise COMError(hr.E_INVALIDARG,
                           f"Finish_{spec.name} called, but the call in progress is "
                           f"Begin_{call.method}; call Finish_{call.method}() (nothing changed)")
        while True:
            effect, _s, code = self._machine.step(Input.FINISH)
            if effect is not Effect.WAIT:
                break
            assert call is not None
            fut = apt.new_future()
            call.waiters.append(fut)
            try:
                await apt.com_wait(fut)
            except asyncio.CancelledError:
                # R32: cancel as Cancel(0) and still clean up, so the call object is ready
                start_cancel(call, 0.0)
                self._machine.step(Input.FINISH)
                self._event.Reset()
                call.reply = None
                raise
        if effect is Effect.REFUSE:
            raise COMError(code or hr.E_FAIL,
                           f"Finish_{spec.name}: no call in progress (call "
                           f"Begin_{spec.name} first; a call is finished once)")
        assert call is not None
        self._event.Reset()
        return _outcome(call, apt, effect, code)

    def QueryInterface(self, iface: type[Any]) -> Any:
        """``ISynchronize`` and ``ICancelMethodCalls`` (R23, R27); the async interface itself.

        Raises:
            COMError(E_NOINTERFACE): any other interface.
            COMError(CO_E_OBJNOTCONNECTED): the call object's count has reached 0 (released).
        """
        iface = _check_interface(iface)
        if self._refs <= 0:
            raise COMError(hr.CO_E_OBJNOTCONNECTED,
                           f"QueryInterface({iface.__name__}) on a call object whose last "
                           "reference was released; create a new one with CreateCall")
        if iface is ISynchronize:
            self.AddRef()
            return _SyncFacet(self)
        if iface is ICancelMethodCalls:
            self.AddRef()
            return _CancelFacet(self)
        if iface is self._async_iface or iface is IUnknown:
            self.AddRef()
            return self
        raise COMError(hr.E_NOINTERFACE, f"a call object has no {iface.__name__}")

    def AddRef(self) -> int:
        """One more reference; 0 once released (the count does not come back, R25)."""
        if self._refs <= 0:
            return 0
        self._refs += 1
        return self._refs

    def Release(self) -> int:
        """The last Release without Finish_ does not cancel: the reply is dropped (R25)."""
        if self._refs <= 0:
            return 0
        self._refs -= 1
        if self._refs == 0:
            self._machine.step(Input.RELEASE)
        return self._refs


_call_object_classes: dict[type[Interface], type[CallObject]] = {}


def call_object_class(async_iface: type[Interface]) -> type[CallObject]:
    """The call-object class for ``AsyncIX``: real ``Begin_M``/``Finish_M`` methods (R20), and
    ``isinstance(call, AsyncIX)`` holds."""
    cls = _call_object_classes.get(async_iface)
    if cls is not None:
        return cls
    sync_iface = async_iface._com_sync_interface_
    assert sync_iface is not None
    ns: dict[str, Any] = {}
    for name, spec in sync_iface._com_methods_.items():
        ns["Begin_" + name] = _begin_method(spec)
        ns["Finish_" + name] = _finish_method(spec)
    cls = type("CallObject_" + async_iface.__name__, (CallObject, async_iface), ns)
    _call_object_classes[async_iface] = cls
    return cls


def _begin_method(spec: MethodSpec) -> Any:
    def begin(self: CallObject, *args: Any, **kwargs: Any) -> int:
        return self._begin(spec, args, kwargs)

    begin.__name__ = "Begin_" + spec.name
    begin.__doc__ = (f"Begin {spec.interface.__name__}.{spec.name}{spec.signature}: S_OK at once "
                     "(R20); COMError(RPC_E_CALL_PENDING) until Finish_ of the previous call")
    return begin


def _finish_method(spec: MethodSpec) -> Any:
    def finish(self: CallObject) -> Any:
        return self._finish(spec)

    finish.__name__ = "Finish_" + spec.name
    finish.__doc__ = (f"Finish {spec.interface.__name__}.{spec.name}: its result or failure "
                      "(R22); COMError(RPC_E_CALL_COMPLETE) with no call in progress")
    return finish


class CallFactory(ICallFactory):
    """``ICallFactory`` of a proxy: always available (R19)."""

    _com_kind_ = "facet"

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy

    def CreateCall(self, async_iface: type[Interface], outer: Any = None) -> CallObject:
        """A new call object for ``async_iface``.

        Raises:
            COMError(E_NOINTERFACE): not an async interface, or its synchronous interface is
                not implemented by the object.
            COMError(E_INVALIDARG), also a TypeError: ``outer`` has no ``Signal()`` (R24).
        """
        self._proxy._check_use()
        if outer is not None and not callable(getattr(outer, "Signal", None)):
            raise BadArgumentType(f"CreateCall(..., outer={outer!r}): the completion object "
                                  "needs a Signal() method (R24)")
        is_async = is_async_interface(async_iface)
        sync_iface = async_iface._com_sync_interface_ if is_async else None
        code = rules.create_call_status(
            is_async, sync_iface is not None and self._proxy._stub.implements(sync_iface))
        if code:
            name = getattr(async_iface, "__name__", repr(async_iface))
            raise COMError(code, f"CreateCall({name}): not an async interface "
                                 "(use comsim.async_interface(IX)), or the object does not "
                                 "implement its synchronous interface")
        return call_object_class(async_iface)(self._proxy, async_iface, outer)

    def QueryInterface(self, iface: type[Any]) -> Any:
        return self._proxy.QueryInterface(iface)

    def AddRef(self) -> int:
        return self._proxy.AddRef()

    def Release(self) -> int:
        return self._proxy.Release()


# --------------------------------------------------------------------------- events (R23)
def _wake_future(fut: asyncio.Future[Any], event: _Event) -> None:
    if fut.done():
        if event._state.woken_too_late():  # the waiter gave up meanwhile: hand it back
            event.Signal()
        return
    fut.set_result(True)


_EVENTS_LOCK = threading.Lock()


class _Event(ISynchronize):
    """A free-threaded event: usable from any apartment, passed by reference."""

    _com_kind_ = "event"
    _com_free_threaded_ = True

    def __init__(self, auto_reset: bool) -> None:
        self._state = EventState(auto_reset)
        self._lock = _EVENTS_LOCK  # events are free-threaded; no lock is made per event
        self._refs = 1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'set' if self._state.is_set else 'clear'}>"

    def Signal(self) -> int:
        """Set the event, waking waiters (one, for an auto-reset event)."""
        with self._lock:
            wake = self._state.signal()
        for loop, fut in wake:
            call_in_loop(loop, _wake_future, fut, self)
        return hr.S_OK

    def Reset(self) -> int:
        with self._lock:
            self._state.reset()
        return hr.S_OK

    def is_set(self) -> bool:
        return self._state.is_set

    async def Wait(self, flags: int, milliseconds: int) -> int:
        """S_OK once signalled, RPC_S_CALLPENDING on time-out (0 polls; INFINITE waits).
        In an apartment this is a COM wait (R23).

        Raises:
            COMError(E_INVALIDARG): a negative time-out other than INFINITE.
        """
        try:
            timeout = rules.wait_timeout(milliseconds)
        except ValueError as exc:
            raise COMError(hr.E_INVALIDARG, f"Wait(..., {milliseconds!r}): {exc}") from None
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._state.try_wait():
                return hr.S_OK
            if timeout == 0:
                return hr.RPC_S_CALLPENDING
            fut: asyncio.Future[Any] = loop.create_future()
            entry = (loop, fut)
            self._state.add_waiter(entry)
        w = WHERE.get()
        try:
            if w is not None:
                ok = await w.apartment.com_wait(fut, timeout=timeout)
            else:
                ok = await futures.wait(fut, timeout)
        finally:
            with self._lock:
                self._state.remove_waiter(entry)
        return hr.S_OK if ok else hr.RPC_S_CALLPENDING

    def QueryInterface(self, iface: type[Any]) -> Any:
        iface = _check_interface(iface)
        if iface in (ISynchronize, IUnknown):
            self.AddRef()
            return self
        raise COMError(hr.E_NOINTERFACE, f"{type(self).__name__} has no {iface.__name__}")

    def AddRef(self) -> int:
        self._refs += 1
        return self._refs

    def Release(self) -> int:
        self._refs = max(0, self._refs - 1)
        return self._refs

    def __reduce__(self) -> Any:  # pragma: no cover - passed by reference, never pickled
        raise TypeError("events pass by reference")


class StdEvent(_Event):
    """An auto-reset event: a successful wait resets it (R23)."""

    def __init__(self) -> None:
        super().__init__(auto_reset=True)


class ManualResetEvent(_Event):
    """A manual-reset event: it stays set until ``Reset()`` (R23)."""

    def __init__(self) -> None:
        super().__init__(auto_reset=False)


# --------------------------------------------------------------------------- server call (R26)
class ServerCall:
    """Base of a server-side call object (R26). Keeps ``outer`` (signal it when the result is
    ready) and gives ``TestCancel()`` for cooperative cancellation."""

    _com_kind_ = "servercall"
    _com_incoming: ClientCall | None = None

    def __init__(self, outer: Any) -> None:
        self.outer = outer

    def TestCancel(self) -> int:
        """RPC_E_CALL_CANCELED once the client cancelled, RPC_S_CALLPENDING before."""
        call = self._com_incoming
        return rules.test_cancel_status(call is not None,
                                        call is not None and call.server_cancelled)

    def QueryInterface(self, iface: type[Any]) -> Any:
        """The interfaces the class implements (R19, R27: ``ICancelMethodCalls`` only if it
        does).

        Raises:
            COMError(E_NOINTERFACE): any other interface.
        """
        iface = _check_interface(iface)
        if isinstance(self, iface) or iface is IUnknown:
            return self
        raise COMError(hr.E_NOINTERFACE, f"{type(self).__name__} has no {iface.__name__}")

    def AddRef(self) -> int:
        return 1

    def Release(self) -> int:
        return 0


# --------------------------------------------------------------------------- free functions
def CoTestCancel() -> int:
    """Inside a server method (and tasks it spawns): RPC_E_CALL_CANCELED once the client
    cancelled, else RPC_S_CALLPENDING; outside any incoming call RPC_E_CALL_COMPLETE (R30)."""
    w = WHERE.get()
    call = w.incoming if w is not None else None
    return rules.test_cancel_status(call is not None, call is not None and call.server_cancelled)


def current_thread_id() -> int:
    """The caller's simulated thread id (R31)."""
    w = WHERE.get()
    return w.thread_id if w is not None else outside_thread_id()


def _cancel_counter() -> Any:
    rt = current_runtime()
    if rt is None:
        from .._core.rules import CancelCounter

        global _OUTSIDE_COUNTER
        if _OUTSIDE_COUNTER is None:
            _OUTSIDE_COUNTER = CancelCounter()
        return _OUTSIDE_COUNTER
    return rt._cancel_counts


_OUTSIDE_COUNTER: Any = None


def CoEnableCallCancellation() -> int:
    """Make this simulated thread's later synchronous calls cancellable (counts up, R31)."""
    return int(_cancel_counter().enable(current_thread_id()))


def CoDisableCallCancellation() -> int:
    """Count down; CO_E_CANCEL_DISABLED when the count is already zero (R31)."""
    return int(_cancel_counter().disable(current_thread_id()))


async def CoCancelCall(thread_id: int, seconds: float) -> int:
    """Cancel the innermost pending synchronous call of simulated thread ``thread_id`` (0: the
    caller's own) with Cancel's grace rule (R28, R31). Gives S_OK, E_NOINTERFACE (no such call),
    CO_E_CANCEL_DISABLED, RPC_E_CALL_CANCELED or RPC_E_CALL_COMPLETE.

    Raises:
        COMError(E_INVALIDARG): a negative time-out.
    """
    try:
        timeout = rules.cancel_timeout(seconds)
    except ValueError as exc:
        raise COMError(hr.E_INVALIDARG, f"CoCancelCall(..., {seconds!r}): {exc}") from None
    if isinstance(thread_id, bool) or not isinstance(thread_id, int) or thread_id < 0:
        raise BadArgumentType(f"CoCancelCall({thread_id!r}, ...): thread_id must be a "
                              "simulated thread id (int >= 0; 0 for the caller's own)")
    tid = thread_id or current_thread_id()
    rt = runtime_with_thread(tid)
    stack = rt._outgoing.get(tid) if rt is not None else None
    call: ClientCall | None = stack[-1] if stack else None
    status = rules.cancel_call_status(
        call is not None,
        call is not None and call.cancellable,
        call is not None and call.machine.state in (State.CANCELLING, State.CANCELLED),
    )
    if status or call is None:
        return status
    w = WHERE.get()
    client = call.client
    if w is not None and w.apartment is client:
        return await _await_cancel(client, call, start_cancel(call, timeout))
    # another apartment (or none): the cancel runs on the caller's loop, we wait here
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Any] = loop.create_future()

    def begin() -> None:
        r = start_cancel(call, timeout)
        if isinstance(r, int):
            call_in_loop(loop, settle, result, r)
        else:
            r.add_done_callback(lambda f: call_in_loop(loop, settle, result, f.result()))

    if not client._post(begin):
        return hr.RPC_E_CALL_COMPLETE
    if w is not None:
        return int(await w.apartment.com_wait(result))
    return int(await result)

