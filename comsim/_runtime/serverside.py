"""The server task's less common steps (``server.server_task``): an injected fault, the reply
for a method a cancel went through (R14, R18, R30), and R26's server call objects."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

import anyio

from .._core import hresult as hr
from .._core import rules
from .._core.constants import INFINITE
from .._core.hresult import COMError
from .._core.messages import Reply
from .boundary import fault_reply
from .events import ManualResetEvent
from .objects import async_interface
from .record import ClientCall
from .wire import discard, pack

if TYPE_CHECKING:
    from .apartment import Apartment


def inject_fault(rt: Any, apt: Apartment, call: ClientCall) -> None:
    fault = rt._fault_for(call.method, apt)  # ``Runtime.inject_fault``'s, raised here
    if fault is not None:
        discard(call.args)  # R7: the arguments are never unpacked
        raise fault


def cancelled_reply(apt: Apartment, call: ClientCall, obj: Any, scope: anyio.CancelScope,
                    task: asyncio.Task[Any], exc: BaseException) -> Reply:
    """The reply for a method a CancelledError went through: an interrupt (R30) or a shutdown
    (R18), which goes on (the reply has no ``exc``), or the method's own exception (R14)."""
    interrupted = scope.cancel_called
    code = rules.server_cancel_outcome(
        interrupted, apt._closing or (not interrupted and task.cancelling() > 0))
    if code == hr.RPC_E_SERVERFAULT:
        return fault_reply(obj, call.method, exc)
    return Reply(code, text=("the server method was interrupted"
                             if code == hr.RPC_E_CALL_CANCELED
                             else f"apartment {apt.name!r} shut down"))


async def via_server_call(apt: Apartment, call: ClientCall, obj: Any,
                          args: tuple[Any, ...]) -> Reply | None:
    """R26: the stub drives the server's own call object: Begin_, wait for Signal, Finish_.
    None: the object makes no call object for the interface (the method runs as it is).
    ``Begin_`` and ``Finish_`` may each be written ``async def``: what they return is awaited
    when it is awaitable (a coroutine never run would never signal ``outer``).

    Raises:
        COMError: from CreateCall (other than E_NOINTERFACE), Begin_ or Finish_; any other
            exception they raise (the server task makes either the call's failure, R14).
    """
    outer = ManualResetEvent()
    try:
        scall = obj.CreateCall(async_interface(call.spec.interface), outer)
    except COMError as exc:
        if exc.hresult == hr.E_NOINTERFACE:
            return None
        raise
    scall._com_incoming = call
    began = getattr(scall, "Begin_" + call.method)(*args)
    if inspect.isawaitable(began):
        await began
    await outer.Wait(0, INFINITE)
    result = getattr(scall, "Finish_" + call.method)()
    if inspect.isawaitable(result):
        result = await result
    return Reply(hr.S_OK, pack(result, call.spec.result_label))
