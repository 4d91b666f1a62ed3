"""Cancelling a call, client side (R28, R16's CANCELCALL, R31): the cancel decided against the
server's stage, sent, and its grace period waited out."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .._core import decide
from .._core import hresult as hr
from .._core.callobj import Effect, Input
from .._core.decide import Reaction, Waiter
from .._core.sta import WaitKind
from .._core.stub import CancelReport
from . import trace
from .context import on_client_thread, step_on_client
from .futures import settle
from .hooks import HOOKS
from .record import ClientCall, _end_grace, _ended
from .wire import discard

if TYPE_CHECKING:
    from .apartment import Apartment

#: the kind of a grace-period wait: one for a call, with its causality id (R2, R16)
_OTHER_WAIT: Final = WaitKind.OTHER


# --------------------------------------------------------------------------- cancel (R28)
def start_cancel(call: ClientCall, timeout: float | None) -> Any:
    """Cancel ``call`` on its client's loop. Gives an HRESULT, or a future that resolves to one
    when the grace period ends (S_OK) or the call completes meanwhile (RPC_E_CALL_COMPLETE)."""
    if _moved_on(call):
        return hr.RPC_E_CALL_COMPLETE
    rt = call.client._rt
    machine = call.machine
    with rt._lock:
        if call.report is None:
            call.report = CancelReport()
        effect, _state, code = decide.cancel(machine, call)
    if effect is Effect.STATUS or effect is Effect.NOTHING:
        return code
    if call.tracing:
        trace.emit("call.cancel_requested", **call.fields())
    if effect is Effect.COMPLETE_CANCELLED:  # never dispatched (R29 `queued`)
        with rt._lock:
            call.report.note_stage("queued")  # made above, under the same lock
        # R7: the request's arguments will never be unpacked: their references go now
        discard(call.args)
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
        # the grace period ends with the caller's apartment, which takes no reply after (R18)
        call.client._at_close[call] = functools.partial(_end_grace, call,
                                                        hr.RPC_E_CALL_COMPLETE)
    call.cancel_waiters.append(fut)
    if timeout is not None:
        call.grace_handle = loop.call_later(timeout, grace_expired, call)
    return fut


def _moved_on(call: ClientCall) -> bool:
    """``call``'s call object has begun another call since (R28: ``call``'s reply was taken in
    and ``Finish_`` called): a cancel or the end of a grace period meant for ``call`` that
    reaches the client's loop only now (posted from another thread) must not step the call
    object's machine, which is the new call's. (``record.on_reply`` drops a late reply so.)"""
    owner = call.owner
    return owner is not None and owner._call is not call


def cancel_outgoing(call: ClientCall) -> None:
    """R16: MessagePending answered PENDINGMSG_CANCELCALL: the call is cancelled as
    ``Cancel(0)`` would."""
    start_cancel(call, 0.0)


def grace_expired(call: ClientCall) -> int:
    """Cancel's grace period of ``call`` ends now (its timer, or R32): the GRACE_EXPIRED step.
    Its timer, if it has not fired, goes: it must not step the call object's machine later,
    for another call. Gives S_OK if the call ended cancelled, else the step's HRESULT."""
    handle, call.grace_handle = call.grace_handle, None
    if handle is not None:
        handle.cancel()
    if _moved_on(call):
        return hr.RPC_E_CALL_COMPLETE
    effect, _state, code = call.machine.step(Input.GRACE_EXPIRED)
    if effect is Effect.COMPLETE_CANCELLED:
        _ended(call, cancelled=True)
        return hr.S_OK
    return code if code is not None else hr.S_OK


async def _await_cancel(apt: Apartment | None, call: ClientCall, pending: Any) -> int:
    """Wait out Cancel's grace period (a COM wait with the call's causality id, R16; a plain
    one for code in no apartment, R2). Cancelling the waiter ends the call cancelled at once
    (R32)."""
    if isinstance(pending, int):
        return pending
    done = [False]

    def at_once() -> None:  # R32: at once, not when the unit is on top again (R2)
        if not done[0]:
            done[0] = True
            if decide.waiter_cancelled(Waiter.CANCEL_GRACE) is Reaction.END_GRACE:
                grace_expired(call)

    return await _wait_grace(apt, call, pending, at_once)


async def _wait_grace(apt: Apartment | None, call: ClientCall, fut: asyncio.Future[int],
                      at_once: Callable[[], None]) -> int:
    """Wait for a cancel's outcome ``fut``: a COM wait with the call's causality id (R16), a
    plain one for code in no apartment (R2). Cancelling the waiter runs ``at_once`` (R32) when
    the cancel comes, or, if it comes while the unit waits to be on top again, then."""
    try:
        return int(await (apt.com_wait(fut, _OTHER_WAIT, call.causality_id, on_cancel=at_once)
                          if apt is not None else fut))
    except asyncio.CancelledError:
        at_once()  # (idempotent: it may have run when the cancel came)
        raise


def cancel_there(call: ClientCall, timeout: float | None, gave_up: list[bool]
                 ) -> tuple[Callable[[], None], asyncio.Future[int]]:
    """A cancel from another loop than the call's client's: the step to run on the client's
    loop (``start_cancel``, in order with the replies it takes in), and a future of this loop
    that its outcome comes back to through the transport (R28; ``cancel_call``, R31's
    ``CoCancelCall``). Once ``gave_up[0]`` (the waiter was cancelled before the step ran) the
    step cancels as ``Cancel(0)``: the call ends cancelled at once (R32)."""
    here = asyncio.get_running_loop()
    fut: asyncio.Future[int] = here.create_future()
    to_loop = call.client._rt._transport.to_loop

    def back(value: int) -> None:
        to_loop(here, settle, (fut, value))

    def there() -> None:
        got = start_cancel(call, 0.0 if gave_up[0] else timeout)
        if isinstance(got, int):
            back(got)
        else:
            got.add_done_callback(lambda f: back(hr.RPC_E_CALL_COMPLETE if f.cancelled()
                                                 else f.result()))

    return there, fut


async def cancel_call(apt: Any, call: ClientCall, timeout: float | None) -> int:
    """``ICancelMethodCalls.Cancel`` (R28) and ``CoCancelCall`` (R31) from ``apt`` (None: code
    in no apartment). On the call's client thread (NA code there too, R5) the cancel is decided
    there and then; from another thread its steps are posted to the client's loop, in order
    with the replies that loop takes in (at the end of its teardown if it is shutting down, as
    a call object's last Release is), and its outcome comes back to this loop. Either way,
    cancelling the waiter ends the call cancelled at once (R32)."""
    client = call.client
    if on_client_thread(client):
        return await _await_cancel(apt, call, start_cancel(call, timeout))
    gave_up = [False]
    there, fut = cancel_there(call, timeout, gave_up)
    if not step_on_client(client, (there, call), there):
        there()  # its apartment has ended: nothing else steps the call

    def at_once() -> None:  # R32: at once, not when the unit is on top again (R2)
        if not gave_up[0] and (decide.waiter_cancelled(Waiter.CANCEL_GRACE)
                               is Reaction.END_GRACE):
            # the step below may reach the client before ``there`` (the deterministic pump
            # may deliver them so): ``there`` then cancels as Cancel(0)
            gave_up[0] = True

            def expire() -> None:
                grace_expired(call)

            if not step_on_client(client, (expire, call), expire):
                expire()

    return await _wait_grace(apt, call, fut, at_once)
