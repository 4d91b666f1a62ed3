"""Calls into the neutral apartment (R5): no message, no server task, no thread switch.

A call through a proxy to an NA object runs the method at once on the caller's own loop and
simulated thread, with the NA current (``NeutralApartment.enter``), until it returns. It is
still a COM call: arguments and result are copied (R11), failures become HRESULTs (R14), the
causality id goes with it (R15). Entering the NA is not a COM wait: an STA whose thread is in
the NA starts no other unit. ``Begin_`` on an NA proxy starts the method at once as a task of
the caller (choice); a cancel reaches it as it would a server method (R28-R30).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Final

from .._core import hresult as hr
from .._core import rules
from .._core import stub as stubcore
from .._core.hresult import COMError
from .._core.iface import MethodSpec
from .._core.lifetime import LifeEffect
from .._core.messages import Reply
from . import trace
from .boundary import fault_reply
from .context import Where
from .hooks import HOOKS
from .record import ClientCall, on_reply
from .server import new_scope
from .stubs import Stub, call_begins, call_ends
from .wire import discard, pack, unpack

_MISSING: Final = object()


class InlineCall:
    """What code in the NA sees of the synchronous call it runs for (``CoTestCancel``): such a
    call cannot be cancelled but by cancelling the caller's task, which reaches it directly."""

    __slots__ = ("causality_id", "server_cancelled")

    def __init__(self, causality_id: int) -> None:
        self.causality_id = causality_id
        self.server_cancelled = False


def _fields(rt: Any, call_id: int, causality_id: int, spec: MethodSpec, client: Any,
            server: Any) -> dict[str, Any]:
    return {"call_id": call_id, "causality_id": causality_id, "method": spec.name,
            "client": client.name if client is not None else None, "server": server.name,
            "t": rt._now() - rt._t0}


async def call_neutral(where: Where, stub: Stub, spec: MethodSpec, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
    """A synchronous call to an object in the NA (R5): the method runs now, here.

    Raises:
        COMError: E_INVALIDARG / RPC_X_BAD_STUB_DATA for arguments (R11); the method's own
            HRESULT, or RPC_E_SERVERFAULT for any other exception (R14).
    """
    packed = pack(spec.bind(args, kwargs), spec.arguments_label)
    rt = where.runtime
    causality_id = (where.causality_id if where.causality_id is not None
                    else rt._new_causality_id())
    tracing = trace.enabled()
    fields: dict[str, Any] = {}
    if tracing:
        fields = _fields(rt, rt._new_call_id(), causality_id, spec, where.apartment,
                         stub.apartment)
        trace.emit("call.sent", **fields)
        trace.emit("call.dispatched", **fields)
    reply = await invoke(where, stub, spec, packed, InlineCall(causality_id), None)
    if tracing:
        extra = {"exc": repr(reply.exc)} if reply.exc is not None else {}
        trace.emit("call.returned", **fields, hresult=reply.hresult, **extra)
        trace.emit("call.completed", **fields, hresult=reply.hresult)
    if reply.hresult < 0:
        raise COMError(reply.hresult, reply.text) from reply.exc
    return unpack(reply.value, where.apartment, spec.result_label)


async def invoke(where: Where | None, stub: Stub, spec: MethodSpec, packed: Any,
                 incoming: Any, call: ClientCall | None) -> Reply:
    """Run ``spec`` on the NA object of ``stub`` with the NA current, on the caller's thread,
    and give the reply (R11, R14). ``call``: the ``Begin_`` call this runs for, whose cancel
    interrupts an ``interrupt``-policy method (R30); None for a synchronous call, which only
    the caller's own task cancellation stops (it propagates)."""
    nta: Any = stub.apartment  # a ``neutral.NeutralApartment``
    rt = nta._rt
    tokens = nta.enter(where, incoming, incoming.causality_id)
    call_begins(stub)  # R7, R17: it holds the stub and runs (callers on other threads too)
    obj = stub.obj
    try:
        if rt._faults:
            fault = rt._fault_for(spec.name, nta)
            if fault is not None:
                discard(packed)  # R7: the arguments are never unpacked
                raise fault
        args = unpack(packed, nta, spec.arguments_label)
        fn = getattr(obj, spec.name)
        result: Any = _MISSING
        if call is not None and rules.interrupts(obj.cancel_policy):
            with new_scope() as scope:
                call.scope = scope
                if call.server_cancelled:
                    scope.cancel()
                value = fn(*args)
                if asyncio.iscoroutine(value) or hasattr(value, "__await__"):
                    value = await value
                result = value
            if result is _MISSING:  # the client's cancel interrupted it (R30)
                return Reply(hr.RPC_E_CALL_CANCELED, text="the method was interrupted")
        else:
            result = fn(*args)
            if asyncio.iscoroutine(result) or hasattr(result, "__await__"):
                result = await result
        return Reply(hr.S_OK, pack(result, spec.result_label))
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the caller's task is cancelled (R32): it propagates through the NA
        return fault_reply(obj, spec.name, exc)  # the method raised it itself (R14)
    except GeneratorExit as exc:
        tb = exc.__traceback__
        if tb is None or tb.tb_next is None:
            raise  # thrown in here, at the await, by ``close()``: the coroutine is being closed
        return fault_reply(obj, spec.name, exc)  # the method raised it itself (R14)
    except BaseException as exc:  # the fault boundary (``boundary``)
        return fault_reply(obj, spec.name, exc)
    finally:
        effect = call_ends(stub)  # R17: the last running call may disconnect it
        nta.leave(tokens)
        if effect is not LifeEffect.NOTHING:  # it was released meanwhile: it goes now (R7)
            HOOKS.stub_goes(stub, effect)


def begin_neutral(call: ClientCall, where: Where) -> None:
    """``Begin_`` on a proxy to an NA object (R5, choice): the method starts at once as a task
    of the caller, on its loop and thread; its reply is taken in as any reply is (R22-R24).
    The task belongs to the caller's apartment (the one under the NA code, for a call from
    it): that apartment's shutdown cancels it and waits for it (R18), as it does its others."""
    task = asyncio.get_running_loop().create_task(_run_begun(call, where))
    tasks = call.client._tasks
    if tasks is not None:  # not for code in no apartment: no apartment ends it
        tasks[task] = None
        task.add_done_callback(functools.partial(_untrack, tasks))


def _untrack(tasks: dict[asyncio.Task[Any], Any], task: asyncio.Task[Any]) -> None:
    tasks.pop(task, None)


async def _run_begun(call: ClientCall, where: Where) -> None:
    rt = call.client._rt
    with rt._lock:
        effect = call.step(stubcore.Input.DISPATCH)
    if effect is stubcore.Effect.SKIP:
        discard(call.args)  # R7: never unpacked (the cancel released them already)
        return  # cancelled before it started (R29 `queued`): the cancel ended it
    if call.tracing:
        trace.emit("call.dispatched", **call.fields())
    try:
        reply = await invoke(where, call.stub, call.spec, call.args, call, call)
    except asyncio.CancelledError:
        _answer(call, Reply(hr.RPC_E_CALL_CANCELED, text="the caller's task was cancelled"))
        raise
    _answer(call, reply)


def _answer(call: ClientCall, reply: Reply) -> None:
    if call.stage is stubcore.Stage.RUNNING:
        call.step(stubcore.Input.RETURN)
    if call.tracing:
        extra = {"exc": repr(reply.exc)} if reply.exc is not None else {}
        trace.emit("call.returned", **call.fields(), hresult=reply.hresult, **extra)
    on_reply(call, reply)  # on the caller's own loop: taken in at once
