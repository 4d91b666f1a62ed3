"""The server side of a call: the server task that runs methods and sends replies (R13, R14,
R26, R30)."""

from __future__ import annotations

import asyncio
import inspect
import types
from typing import TYPE_CHECKING, Any, Final

import anyio

from .._core import hresult as hr
from .._core import rules
from .._core import stub as stubcore
from .._core.constants import SERVERCALL_ISHANDLED
from .._core.lifetime import LifeEffect
from .._core.messages import Reply, new_reply
from .._core.sta import Unit, UnitKind
from . import trace
from .apartment import MAX_IDLE_SERVER_TASKS
from .boundary import fault_reply
from .context import (
    WHERE,
    new_where,
)
from .hooks import HOOKS
from .jobs import Serving
from .loop import current_task, resume
from .objects import ICallFactory
from .record import ClientCall, answered, on_reply, reply_refused
from .serverside import cancelled_reply, inject_fault, via_server_call
from .stubs import Stub
from .stubs import _stub_lock as stub_lock
from .wire import SCALARS, Packed, discard, pack, unpack

if TYPE_CHECKING:
    from .apartment import Apartment


_scope_class: type[anyio.CancelScope] | None = None
_Coroutine = types.CoroutineType
_RUNNING: Final = stubcore.Stage.RUNNING
#: where RETURN takes a running request (``_core.stub.TABLE``), to a reply
_RETURNED: Final = stubcore.TABLE[(_RUNNING, stubcore.Input.RETURN)][1]
assert stubcore.TABLE[(_RUNNING, stubcore.Input.RETURN)][0] is stubcore.Effect.REPLY
# read once: an enum class's attribute costs a Python ``__getattr__`` hook on every read
_CONNECTED, _DISCONNECTING = stubcore.Connection.CONNECTED, stubcore.Connection.DISCONNECTING
_NOTHING: Final = LifeEffect.NOTHING
_RUN: Final = stubcore.Effect.RUN
_CALL_UNIT: Final = UnitKind.CALL
#: ``_core.stub.TABLE``'s DISPATCH rows by stage
_ON_DISPATCH: Final = {s: r for (s, i), r in stubcore.TABLE.items()
                       if i is stubcore.Input.DISPATCH}


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
    reach a later call. Its frame lasts while a call is in flight: it keeps few locals.
    """
    task = asyncio.current_task()
    assert task is not None
    # started: its first call is its own now, not ``_never_ran``'s (nor kept alive by it);
    # the teardown answers the call it runs if it leaves the task behind (R18)
    serving = Serving(call)
    apt._tasks[task] = serving
    rt = apt._rt
    sched = apt._sched
    idle = apt._idle
    new_slot = apt._new_future
    slot: asyncio.Future[tuple[ClientCall, Unit | None]]
    try:
        while True:
            with new_scope() as scope:
                while True:
                    WHERE.set(new_where((rt, apt, unit, call, call.causality_id,
                                         apt.thread_id if sched is not None
                                         else rt._new_thread_id())))
                    stub = call.stub
                    lock = stub_lock  # the running count (``stubs.call_begins``'s); ``with``
                    lock.acquire()  # written out too: no special-method lookups
                    try:
                        stub.running += 1
                    finally:
                        lock.release()
                    if call.tracing:
                        trace.emit("call.dispatched", **call.fields())
                    obj = stub.obj
                    reply: Reply | None = None
                    propagating = False  # an exception ends the scope or the task
                    try:
                        if rt._faults:
                            inject_fault(rt, apt, call)
                        args = call.args
                        if type(args) is Packed:
                            args = unpack(args, apt, call.spec.arguments_label)
                            call.args = None  # unpacked: nothing is left to release (R7)
                        if stub.call_factory and call.spec.interface is not ICallFactory:
                            reply = await via_server_call(apt, call, obj, args)
                        if reply is None:
                            result = getattr(obj, call.method)
                            policy = obj.cancel_policy
                            if policy == "interrupt" or (policy != "cooperative"
                                                         and rules.interrupts(policy)):
                                # a cancel that reaches the server while the method runs
                                # cancels this scope; once the method has returned, the stage
                                # is `returned` and no cancel touches it (R29)
                                call.scope = scope
                                if call.server_cancelled:  # it came before the method started
                                    scope.cancel()
                            result = result(*args)
                            args = None
                            if type(result) is _Coroutine or inspect.isawaitable(result):
                                result = await result
                            if type(result) not in SCALARS:
                                result = pack(result, call.spec.result_label)
                            reply = new_reply((hr.S_OK, result, None, None, None))
                    except asyncio.CancelledError as exc:
                        # only a client's cancel (R30) cancels the scope, and only the
                        # apartment's shutdown (R18) the task itself; anything else is the
                        # method's own exception (R14)
                        reply = cancelled_reply(apt, call, obj, scope, task, exc)
                        if reply.exc is None:  # not the method's own: an interrupt, a shutdown
                            propagating = True
                            raise  # ends the scope (an interrupt) or the task (shutdown)
                    except GeneratorExit as exc:
                        if current_task(apt._loop) is not task:
                            propagating = True
                            raise  # the coroutine is being closed: nothing more runs
                        reply = fault_reply(obj, call.method, exc)  # the method's own (R14)
                    except BaseException as exc:  # the fault boundary (``boundary``)
                        reply = fault_reply(obj, call.method, exc)
                    finally:
                        # R17: the last running call may disconnect it (``stubs.call_ends``,
                        # written out)
                        lock = stub_lock
                        lock.acquire()
                        try:
                            stub.running -= 1
                            if stub.conn is _DISCONNECTING:
                                stub.conn = stubcore.after_disconnect(stub.running)
                            gone = _NOTHING
                            if call.holds:  # ``record.answered``, written out: one hold
                                call.holds = False
                                life = stub.life  # (and ``StubLife.answered``)
                                life.requests -= 1
                                if not life.requests and not life.strong:
                                    gone = life.answered_last()
                        finally:
                            lock.release()
                        if reply is None:  # a BaseException other than a cancel went through
                            reply = Reply(hr.RPC_E_SERVERFAULT,
                                          text="the server task ended abnormally")
                        # R17: the stub is what it will be once the caller has the reply
                        if call.tracing:
                            send_reply(apt, call, reply)
                        else:  # ``send_reply``, written out (untraced)
                            if call.stage is _RUNNING:
                                call.stage = _RETURNED
                            if not call.client._post(on_reply, call, reply):
                                reply_refused(call, reply)
                        if gone is not _NOTHING:  # the last request let the stub go (R7)
                            HOOKS.stub_goes(stub, gone)
                        if propagating:
                            apt._end_unit(unit)
                    if call.server_cancelled and scope.cancel_called:
                        apt._end_unit(unit)
                        break  # told to cancel, but the method returned: the scope is spent
                    # ``Apartment._keeps_serving``, written out
                    keep = not (apt._closing or len(idle) >= MAX_IDLE_SERVER_TASKS
                                or task.cancelling())
                    if keep:
                        # idle before the unit ends: a queued call that its end starts comes to
                        # this very task, with no loop turn and no task switch
                        slot = new_slot()
                        idle.append(slot)
                    if unit is not None:  # ``Apartment._end_unit``, written out
                        assert sched is not None
                        stack = sched.stack
                        if len(stack) == 1 and stack[0] is unit and not sched.queue:
                            stack.pop()  # ``StaScheduler.end`` leaving the STA idle, written out
                        else:
                            actions = sched.end(unit)
                            if actions:
                                apt._apply(actions)
                    if not keep:
                        return
                    try:
                        call, unit = await slot
                    except asyncio.CancelledError:
                        apt._hand_back(slot)
                        raise
                    serving.call = call
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
            serving.call = call
    finally:
        apt._done()


# --------------------------------------------------------------------------- messages in
def on_request(apt: Apartment, call: ClientCall) -> None:
    """A request message arrives (not a unit: taken in at once). Into the MTA or an idle STA
    with no message filter it is dispatched here (``dispatch``, written out: a frame less)."""
    if apt._closing:
        reply_now(apt, call, hr.RPC_E_DISCONNECTED)
        return
    if call.tracing:
        trace.emit("call.arrived", **call.fields())
    sched = apt._sched
    unit = None
    if sched is not None:
        unit = Unit(_CALL_UNIT, call)
        stack = sched.stack
        if stack or sched.queue:  # not ``sched.start_if_idle(unit)``: it waits its turn
            apt._apply(sched.arrive(unit))
            return
        stack.append(unit)  # ``StaScheduler.start_if_idle``, written out: it starts now
    if apt._filter is not None:
        dispatch(apt, call, unit)  # R16: ``rules.consults_incoming_filter`` decides there
        return
    # no filter: ``rules.consults_incoming_filter`` is False whatever the call, so ``dispatch``
    # goes straight to the DISPATCH step (``_core.stub.TABLE``)
    _run_call(apt, call, unit)


def dispatch(apt: Apartment, call: ClientCall, unit: Unit | None) -> None:
    rt = apt._rt
    if apt._closing:
        reply_now(apt, call, hr.RPC_E_DISCONNECTED)
        apt._end_unit(unit)
        return
    flt = apt._filter
    # a call cancelled while queued is never dispatched (R29), so the filter is not asked
    # about it (R16: just before each dispatch); ``_run_call`` takes its DISPATCH step
    if (flt is not None and _ON_DISPATCH[call.stage][0] is _RUN
            and rules.consults_incoming_filter(True, call.sync, apt._sched is not None)):
        answer = _ask_filter(apt, flt, call)
        if rules.filter_rejects(answer):
            with rt._lock:
                call.step(stubcore.Input.REJECT)
            send_reply(apt, call, Reply(hr.RPC_E_CALL_REJECTED, reject=answer))
            apt._end_unit(unit)
            return
    _run_call(apt, call, unit)


def _run_call(apt: Apartment, call: ClientCall, unit: Unit | None) -> None:
    """The DISPATCH step (``_core.stub.TABLE``): the call runs in a server task (an idle one
    takes it), or ends without running."""
    lock = apt._rt._lock  # ``call.step(Input.DISPATCH)``, written out (one read of the stage)
    lock.acquire()
    try:
        stage = call.stage
        effect, after = _ON_DISPATCH[stage]
        if after is not stage:
            call.stage = after
    finally:
        lock.release()
    if effect is not _RUN or call.stub.conn is not _CONNECTED:
        _not_run(apt, call, unit, effect)
        return
    idle = apt._idle
    while idle:  # a server task that has finished its last call takes this one
        slot = idle.pop()
        if not slot.done():  # (a slot whose task was cancelled meanwhile is passed over)
            resume(slot, (call, unit))
            return
    apt._spawn(server_task(apt, call, unit), (call, unit))


def _not_run(apt: Apartment, call: ClientCall, unit: Unit | None,
             effect: stubcore.Effect) -> None:
    """A request the DISPATCH step did not let run: cancelled while queued (R29), or its
    object disconnected (R17)."""
    if effect is stubcore.Effect.SKIP:  # cancelled while queued (R29): never unpacked (R7)
        discard(call.args)
        answered(call)
    else:
        status = stubcore.request_status(call.stub.conn)
        assert status is not None  # (the fast check above: the object is not connected)
        reply_now(apt, call, status)
    apt._end_unit(unit)


def _ask_filter(apt: Apartment, flt: Any, call: ClientCall) -> int:
    sched = apt._sched
    assert sched is not None
    below = sched.stack[-2] if len(sched.stack) > 1 else None
    waiting = None
    if below is not None:
        for w in reversed(below.waits):
            if not w.ready:
                waiting = w.causality_id
                break
    call_type = rules.incoming_call_type(below is None, waiting, call.causality_id)
    tick = apt._rt._ticks_since(call.sent_at)
    # a faulty filter must not stop the apartment nor lose the call: it is handled
    return apt._ask_hook(SERVERCALL_ISHANDLED, flt.HandleInComingCall, call_type,
                          call.caller_thread, tick, (call.spec.interface, call.method))


def fail_queued(apt: Apartment, stub: Stub, code: int) -> None:
    """R17: calls queued for a disconnected object fail without running."""
    if apt._sched is None:
        return
    for unit in list(apt._sched.queue):
        if unit.kind is UnitKind.CALL and unit.payload.stub is stub:
            apt._sched.withdraw(unit)
            reply_now(apt, unit.payload, code)


def reply_now(apt: Apartment, call: ClientCall, code: int) -> None:
    """Answer ``call`` with ``code`` without running it: its arguments are never unpacked,
    so the references inside them are released (R7)."""
    discard(call.args)
    text = {
        hr.RPC_E_DISCONNECTED: f"apartment {apt.name!r} or its object has gone",
        hr.CO_E_OBJNOTCONNECTED: "the object was disconnected (CoDisconnectObject) "
        "and calls to it still run",
    }.get(code)
    send_reply(apt, call, Reply(code, text=text))


def send_reply(apt: Apartment, call: ClientCall, reply: Reply) -> None:
    if call.stage is _RUNNING:  # ``call.step(Input.RETURN)``, written out: needs no lock
        call.stage = _RETURNED  # (``_core.stub``)
    # R7: the request holds its stub no more; before the reply goes, which may bring the
    # call's next send (a retry, R16) and its next hold
    answered(call)
    if call.tracing and reply.reject is None:
        fields: dict[str, Any] = {}
        if reply.exc is not None:
            fields["exc"] = repr(reply.exc)
        trace.emit("call.returned", **call.fields(), hresult=reply.hresult, **fields)
    if not call.client._post(on_reply, call, reply):
        reply_refused(call, reply)
        if call.tracing:
            trace.emit("call.reply_dropped", **call.fields(), hresult=reply.hresult,
                       reason="client apartment gone")


def on_cancel(apt: Apartment, call: ClientCall) -> None:
    """A cancel message reaches the server (R28-R30)."""
    rt = apt._rt
    with rt._lock:
        effect = call.step(stubcore.Input.CANCEL_ARRIVES)
    if effect is stubcore.Effect.TELL_RUNNING:
        call.server_cancelled = True
        if call.scope is not None:
            call.scope.cancel()
        stage = "running"
    elif effect is stubcore.Effect.TOO_LATE:
        stage = "finished"
    else:
        return
    with rt._lock:
        assert call.report is not None  # start_cancel made it before it sent the cancel
        due = call.report.note_stage(stage)
    if due is not None and call.tracing:
        trace.emit("call.cancelled", **call.fields(), hresult=hr.RPC_E_CALL_CANCELED,
                   stage=due)
