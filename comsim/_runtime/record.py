"""The record of one call, client side, and what happens to it as it ends: the request sent,
the reply taken in, the call ended (its event, ``outer.Signal()``, its waiters) (R13, R22-R25,
R28). ``Proxy`` and ``CallObject`` are the protocols this layer needs of the modules above.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio

from .._core import decide
from .._core import hresult as hr
from .._core.callobj import TABLE as CALL_TABLE
from .._core.callobj import CallMachine, Effect, Input, State
from .._core.decide import ReplyKind
from .._core.iface import MethodSpec
from .._core.lifetime import LifeEffect
from .._core.messages import Reply
from .._core.stub import CancelReport, StubCall
from . import trace
from .boundary import call_hook
from .context import UNDER, WHERE, Client, Where
from .hooks import HOOKS
from .loop import resume
from .stubs import Stub, _stub_lock
from .wire import discard

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
    _outer: Any
    _signal_at: tuple[Any, Any] | None

    def _set_event(self, signalled: bool) -> None: ...


#: where a new request stands on the server side (the core's initial stage)
_WAITING: Final = StubCall().stage

#: ``_core.callobj.TABLE``'s row for a plain reply to a pending call: it completes the call
#: (``on_reply``'s fast path takes this row without the general path's steps)
_PENDING_REPLY: Final = CALL_TABLE[(State.PENDING, Input.REPLY)]
assert _PENDING_REPLY[0] is Effect.COMPLETE
#: ``State.PENDING``, read once (an enum class's attribute costs a Python ``__getattr__`` hook)
_PENDING: Final = State.PENDING
_NOTHING: Final = LifeEffect.NOTHING


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
        "holder",
        "holds",
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
        self.client: Client = where.apartment
        self.args = args
        self.machine = machine
        self.stage = _WAITING
        self.report: CancelReport | None = None  # made by start_cancel: cancels are rare
        self.reply: Reply | None = None
        #: the futures of the tasks waiting for the call's end (None: none yet)
        self.waiters: list[asyncio.Future[Any]] | None = None
        self.cancel_waiters: list[asyncio.Future[Any]] | None = None
        self.sync = sync
        # ``rules.CancelCounter.enabled``, written out
        self.cancellable = rt._cancel_counts.counts.get(where.thread_id, 0) > 0
        self.caller_thread = where.thread_id
        self.sent_at = rt._now()
        #: its request on its way holds the stub (``StubLife.requests``): from each send until
        #: that send is answered (``answered``)
        self.holds = False
        self.scope: anyio.CancelScope | None = None
        self.server_cancelled = False
        self.owner = owner
        self.rejected: int | None = None
        self.grace_handle: asyncio.TimerHandle | None = None
        #: the proxy whose manager a released call object still holds for this call until
        #: its reply is taken in (R25, ``_core.callobj.keeps_manager``)
        self.holder: Proxy | None = None
        # asked once per call: no logging work otherwise (``trace.enabled``, written out)
        self.tracing = trace.enabled() if trace.CAPTURES else trace.is_configured()

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
    holds(call)
    if not call.server._post(HOOKS.on_request, call.server, call):
        _refused(call)


def holds(call: ClientCall) -> None:
    """R7: the request about to be sent holds its stub until it is answered (``answered``)."""
    lock = _stub_lock
    lock.acquire()  # (``with``, written out: no special-method lookups)
    try:
        call.stub.life.requests += 1
    finally:
        lock.release()
    call.holds = True


def answered(call: ClientCall) -> None:
    """R7: the request sent last is answered (run, refused, or dropped while queued): it holds
    its stub no more, and the stub may go (it was released meanwhile). Once per send."""
    if not call.holds:
        return
    call.holds = False
    stub = call.stub
    with _stub_lock:
        effect = stub.life.answered()
    if effect is not _NOTHING:
        HOOKS.stub_goes(stub, effect)


def _refused(call: ClientCall) -> None:
    """The server apartment has gone (R18): the answer comes back at once; the arguments are
    never unpacked (R7)."""
    answered(call)
    discard(call.args)
    on_reply(call, Reply(hr.RPC_E_DISCONNECTED,
                         text=f"apartment {call.server.name!r} has shut down"))


def _wake(call: ClientCall, value: Any) -> None:
    """Wake the tasks that wait for ``call`` (in this loop turn where ``resume`` can)."""
    waiters, call.waiters = call.waiters, None
    if waiters is not None:
        for fut in waiters:
            resume(fut, value)


def stop_waiting(call: ClientCall, status: int) -> None:
    """No reply will reach whoever waits for ``call`` (its call object was released while the
    call was on its way, R25): a cancel in its grace period gets ``status`` (R28), and the
    tasks waiting for the call's end are woken to step its machine again. On the client's
    loop."""
    _end_grace(call, status)
    _wake(call, True)


def add_waiter(call: ClientCall, fut: asyncio.Future[Any]) -> None:
    """``fut`` is woken when ``call`` ends (or is rejected, R16)."""
    waiters = call.waiters
    if waiters is None:
        call.waiters = [fut]
    else:
        waiters.append(fut)


# --------------------------------------------------------------------------- replies
def on_reply(call: ClientCall, reply: Reply) -> None:
    """A reply message is taken in by the client apartment (never a unit: R2)."""
    machine = call.machine
    owner = call.owner
    if (owner is None and reply.reject is None and machine.state is _PENDING
            and reply.hresult != hr.RPC_E_CALL_CANCELED and call.grace_handle is None
            and call.cancel_waiters is None):
        # the fast path of a plain reply: no call object, no rejection (``decide.reply_kind``
        # is STEP), ``decide.reply_input`` is REPLY, and ``_core.callobj.TABLE`` completes a
        # pending call on it (``_PENDING_REPLY``); no cancel is in its grace period, so
        # ``_ended`` would only wake the waiters
        machine.state = _PENDING_REPLY[1]
        call.reply = reply
        waiters, call.waiters = call.waiters, None
        if waiters is not None:
            for fut in waiters:
                resume(fut, True)
        return
    if owner is not None and owner._signal_at is not None:  # begun by NA code: taken in now
        call.client._at_close.pop((_ABANDONED, call), None)  # (``end_with_client``)
    if owner is not None and owner._call is not call:
        discard(reply.value)  # R7: nobody will unpack it
        _trace_dropped(call, reply, "call object began another call")
        return
    rejected = reply.reject is not None
    if rejected and decide.reply_kind(machine, rejected) is ReplyKind.RETRY:
        call.rejected = reply.reject
        _wake(call, "rejected")
        return
    effect = machine.step(decide.reply_input(reply.hresult, rejected))[0]
    if effect is Effect.COMPLETE:
        call.reply = reply
        _ended(call, False)
    elif effect is Effect.COMPLETE_CANCELLED:
        discard(reply.value)  # R7: the call ends cancelled; nobody will unpack the reply
        _ended(call, cancelled=True)
    elif effect is Effect.DROP:
        discard(reply.value)  # R7: R29's `finished` (and R25): nobody will unpack it
        _trace_dropped(call, reply, machine.state.value)
        if call.holder is not None:  # R25: the released call object's count on the manager goes
            call.client._at_close.pop((_HOLDER, call), None)
            _let_go(call)


#: with the call, the key of ``keep_for_reply``'s step in its client's ``_at_close``
_HOLDER: Final = "comsim.holder"
#: with the call, the key of ``end_with_client``'s step in its client's ``_at_close``
_ABANDONED: Final = "comsim.abandoned"


def end_with_client(call: ClientCall) -> None:
    """R18, R5: a call begun by NA code, whose client side is the apartment under that code,
    ends with ``RPC_E_DISCONNECTED`` at the end of that apartment's teardown if no reply was
    taken in by then: NA code on another thread may still wait in its ``Finish_``. Called on
    the client's loop as the call begins."""
    call.client._at_close[(_ABANDONED, call)] = functools.partial(_abandoned, call)


def _abandoned(call: ClientCall) -> None:
    """``end_with_client``'s step: the reply that never came (made only now, if needed)."""
    on_reply(call, Reply(hr.RPC_E_DISCONNECTED, text=f"apartment {call.client.name!r}, under "
                         "the NA code that began the call, shut down before its reply came"))


def keep_for_reply(call: ClientCall, proxy: Proxy) -> None:
    """R25: a call object released while ``call`` is in flight keeps its count on ``proxy``'s
    manager until the reply is taken in (``on_reply`` drops the reply and lets go), or until
    it is certain that none ever will be (R18): at the end of the client's teardown, which
    takes in the last of its replies, or at once if that has ended. The manager need not end
    with the client (the NA's, for NA code on the client's thread, R5). Called on the client's
    loop, or on any thread once the client has closed (``CallObject.Release``)."""
    client = call.client
    with client._rt._lock:  # the teardown closes the client under it (``_run_at_close``)
        if not client._closed:
            call.holder = proxy
            client._at_close[(_HOLDER, call)] = functools.partial(_let_go, call)
            return
    proxy.Release()


def reply_refused(call: ClientCall, reply: Reply) -> None:
    """The client took ``reply`` in no more (R18): nobody will unpack it (R7). What a released
    call object kept for the call (R25) goes too when no teardown of the client will let go
    of it: the teardown has ended (it let go then), or the client has none (a
    ``neutral.OutsideHost`` whose loop has closed). On the server's thread."""
    discard(reply.value)
    if call.holder is None:
        return
    client = call.client
    with client._rt._lock:  # the teardown closes the client under it (``_run_at_close``)
        if not client._closed:
            return  # its teardown's end lets go (``keep_for_reply``)
        client._at_close.pop((_HOLDER, call), None)
    _let_go(call)  # closed: nothing else of the client steps the call any more


def _let_go(call: ClientCall) -> None:
    """What a released call object kept for ``call`` goes, once (R25, R34)."""
    holder, call.holder = call.holder, None
    if holder is not None:
        holder.Release()


def drop_reply(call: ClientCall) -> None:
    """The reply taken in for ``call`` will never be unpacked (the call object was released,
    or the task waiting for it was cancelled): the references inside it are released (R7)."""
    reply, call.reply = call.reply, None
    if reply is not None:
        discard(reply.value)


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
            owner._set_event(True)
            outer = owner._outer
            if outer is not None:
                _signal_outer(call, outer)
    finally:
        # last: a waiter may go on at once (``resume``), and must find all of the above done
        _wake(call, True)


def _signal_outer(call: ClientCall, outer: Any) -> None:
    """R24: ``outer.Signal()`` once, on the client's loop, with the client apartment current
    (for a call made by NA code, the NA over the thread under it, R5)."""

    def run() -> None:
        at = call.owner._signal_at if call.owner is not None else None
        if at is None:
            WHERE.set(call.client._home)
        else:
            WHERE.set(at[0])
            UNDER.set(at[1])
        call_hook("call.signal_failed", call.fields(), None, outer.Signal)

    contextvars.Context().run(run)


def _end_grace(call: ClientCall, status: int) -> None:
    """End the grace period of a cancel in progress: its waiters get ``status``."""
    if call.grace_handle is not None:
        call.grace_handle.cancel()
        call.grace_handle = None
    cws = call.cancel_waiters
    if cws is not None:
        call.cancel_waiters = None
        call.client._at_close.pop(call, None)
        for fut in cws:
            if not fut.done():
                fut.set_result(status)
