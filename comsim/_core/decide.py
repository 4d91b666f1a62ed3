"""Decisions that take both sides of a call: compositions of the core's tables, and R32.

The call-object machine (``callobj``, client side) and the request's stage (``stub``, server
side) are each one table. Some inputs reach both: a ``Cancel`` is decided against where the
request stands (R28, R29); a reply that rejects the call is a retry while the call is pending
(R16). And a task that waits on a call can be cancelled by Python (R32), which COM has no word
for: ``WAITER_CANCELLED`` is the table that says what that means for each kind of wait.

Each function steps the tables it names and gives the effect for the runtime to carry out; the
runtime calls them under its lock where two threads may race (``stub``'s module text).
"""

from __future__ import annotations

import enum
from typing import Final

from . import hresult as hr
from .callobj import CallMachine, Input, State, Transition
from .stub import Effect as StubEffect
from .stub import Input as StubInput
from .stub import StubCall


def cancel(machine: CallMachine, request: StubCall) -> Transition:
    """R28, R29: ``Cancel`` (or ``CoCancelCall``, or R32's cancel) of a call. While the call is
    pending, the cancel first claims the request: one not yet dispatched is dropped, never to
    run (``CANCEL_QUEUED``: it ends cancelled at once, stage ``queued``); one past dispatch is
    told (``CANCEL``: ``TELL_SERVER``). Otherwise the call machine answers with a status."""
    if machine.state is State.PENDING:
        claim = request.step(StubInput.CANCEL)
        return machine.step(Input.CANCEL_QUEUED if claim is StubEffect.DROPPED_QUEUED
                            else Input.CANCEL)
    return machine.step(Input.CANCEL)


class ReplyKind(enum.Enum):
    """What a reply taken in by the client means for its call."""

    __hash__ = object.__hash__
    RETRY = "retry"  # rejected while pending: the caller's filter decides (R16)
    STEP = "step"  # the call machine takes it (``reply_input``)


def reply_kind(machine: CallMachine, rejected: bool) -> ReplyKind:
    """R16: a rejection of a pending call goes to the caller's ``RetryRejectedCall``; every
    other reply is a step of the call machine (a rejection of a call being cancelled ends it
    cancelled: it never ran)."""
    if rejected and machine.state is State.PENDING:
        return ReplyKind.RETRY
    return ReplyKind.STEP


def reply_input(code: int, rejected: bool) -> Input:
    """R28: the call-machine input for a reply: ``REPLY_CANCELED`` when it says the call was
    cancelled (or it was rejected, so never ran), else ``REPLY``."""
    return Input.REPLY_CANCELED if rejected or code == hr.RPC_E_CALL_CANCELED else Input.REPLY


# --------------------------------------------------------------------------- R32
class Waiter(enum.Enum):
    """What a task that Python cancels was waiting on (R32)."""

    __hash__ = object.__hash__
    SYNC_CALL = "sync_call"  # a synchronous call through a proxy
    FINISH = "finish"  # Finish_
    WAIT = "wait"  # ISynchronize.Wait
    CANCEL_GRACE = "cancel_grace"  # Cancel(seconds) or CoCancelCall waiting out the grace
    RUN = "run"  # Apartment.run


class Reaction(enum.Enum):
    """What the runtime does when such a waiter is cancelled (R32)."""

    __hash__ = object.__hash__
    NOTHING = "nothing"  # the call has ended already: only the waiter goes
    CANCEL = "cancel"  # cancel the call as Cancel(0) would
    ABANDON = "abandon"  # not cancellable (or the caller's apartment is going, R18): the
    #                      server runs on, its reply is dropped, a cancel's grace ends
    CANCEL_THEN_FINISH = "cancel_then_finish"  # Cancel(0), then Finish_'s clean-up, shielded:
    #                                            the call object is at once ready again
    END_WAIT = "end_wait"  # just end the wait
    END_GRACE = "end_grace"  # the call ends cancelled at once
    CANCEL_UNIT = "cancel_unit"  # cancel the unit in the apartment and wait for it to end


#: R32: (what was awaited, the call may be cancelled (R31), the caller's apartment is shutting
#: down) -> reaction. Synchronous calls depend on both flags, ``Finish_`` on the second: a
#: shutting-down apartment's own outgoing calls are abandoned, no cancel sent (R18); the
#: teardown ends them.
WAITER_CANCELLED: Final[dict[tuple[Waiter, bool, bool], Reaction]] = {
    (Waiter.SYNC_CALL, True, False): Reaction.CANCEL,
    (Waiter.SYNC_CALL, False, False): Reaction.ABANDON,
    (Waiter.SYNC_CALL, True, True): Reaction.ABANDON,
    (Waiter.SYNC_CALL, False, True): Reaction.ABANDON,
    (Waiter.FINISH, True, False): Reaction.CANCEL_THEN_FINISH,
    (Waiter.FINISH, False, False): Reaction.CANCEL_THEN_FINISH,
    (Waiter.FINISH, True, True): Reaction.END_WAIT,
    (Waiter.FINISH, False, True): Reaction.END_WAIT,
    **{(w, c, s): r
       for w, r in ((Waiter.WAIT, Reaction.END_WAIT), (Waiter.CANCEL_GRACE, Reaction.END_GRACE),
                    (Waiter.RUN, Reaction.CANCEL_UNIT))
       for c in (True, False) for s in (True, False)},
}


def waiter_cancelled(waiter: Waiter, *, ended: bool = False, cancellable: bool = False,
                     closing: bool = False) -> Reaction:
    """R32: the reaction to Python cancelling a task that waits on ``waiter``; ``ended``: the
    call has ended already (a synchronous call then needs nothing)."""
    if ended and waiter is Waiter.SYNC_CALL:
        return Reaction.NOTHING
    return WAITER_CANCELLED[(waiter, cancellable, closing)]
