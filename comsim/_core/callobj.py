"""The life of one call object, client side: one transition table (R21, R22, R23, R25, R28).

A synchronous call through a proxy is the same machine driven by BEGIN then FINISH, so the
rules for cancelling it (R31, R32) are the same rules.

``TABLE[(state, input)] -> (effect, next_state)``. The runtime feeds inputs and carries out
effects; it never decides a COM rule itself. Pairs missing from the table cannot happen
(``step`` raises ``InvalidTransition``, a bug in comsim, never a user error).
"""

from __future__ import annotations

import enum
from typing import Final

from . import hresult as hr


class State(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    IDLE = "idle"  # no call in progress: before the first Begin_, or after Finish_
    PENDING = "pending"  # begun, the reply not yet taken in
    CANCELLING = "cancelling"  # Cancel(seconds) told the server and waits for the reply
    COMPLETED = "completed"  # the reply was taken in; Finish_ gives it
    CANCELLED = "cancelled"  # ended cancelled; Finish_ raises RPC_E_CALL_CANCELED
    RELEASED = "released"  # the last reference went without Finish_ (R25)


class Input(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    BEGIN = "begin"
    REPLY = "reply"  # the reply was taken in, with any HRESULT but RPC_E_CALL_CANCELED
    REPLY_CANCELED = "reply_canceled"  # the reply says RPC_E_CALL_CANCELED
    CANCEL_QUEUED = "cancel_queued"  # Cancel found the request not yet dispatched
    CANCEL = "cancel"  # Cancel found the server running (or finished)
    GRACE_EXPIRED = "grace_expired"  # Cancel's wait ended with no reply
    FINISH = "finish"
    TEST_CANCEL = "test_cancel"  # ICancelMethodCalls.TestCancel, a query
    RELEASE = "release"


class Effect(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    SEND = "send"  # send the request; clear the event
    REFUSE = "refuse"  # raise or return the HRESULT carried by the transition; nothing changes
    STATUS = "status"  # return the HRESULT carried by the transition (a status, not a failure)
    COMPLETE = "complete"  # keep the reply, signal the event (and `outer`)
    COMPLETE_CANCELLED = "complete_cancelled"  # end cancelled: signal; Cancel gives S_OK
    TELL_SERVER = "tell_server"  # post a cancel to the server; start the grace period
    WAIT = "wait"  # Finish_ must wait for the call to end (a COM wait), then step again
    DELIVER = "deliver"  # Finish_ gives the kept reply; clear the event
    RAISE_CANCELLED = "raise_cancelled"  # Finish_ raises RPC_E_CALL_CANCELED; clear the event
    DROP = "drop"  # a reply nobody will read: drop it and trace `call.reply_dropped`
    NOTHING = "nothing"
    #: released (R25): later replies are dropped, nothing is cancelled; a reply taken in is
    #: dropped with its references (R7); the call object's one count on its proxy manager,
    #: held since CreateCall, is released (R19, R25, R34; ``keeps_manager`` says when)
    FORGET = "forget"
    #: released while the call is on its way (R25): as FORGET, except that the count on the
    #: manager stays until the reply is taken in (``keeps_manager``), and whoever waits for
    #: the call's end stops waiting now, as no reply will reach them: a ``Finish_`` steps
    #: again (RELEASED refuses it), a ``Cancel`` in its grace period (R28) gives the HRESULT
    #: carried by the transition, what ``Cancel`` gives in RELEASED
    FORGET_IN_FLIGHT = "forget_in_flight"


S = State
In = Input
E = Effect

#: (effect, next state, HRESULT for REFUSE/STATUS)
Transition = tuple[Effect, State, int | None]

TABLE: Final[dict[tuple[State, Input], Transition]] = {
    # --- BEGIN (R21) ---------------------------------------------------------------
    (S.IDLE, In.BEGIN): (E.SEND, S.PENDING, None),
    (S.PENDING, In.BEGIN): (E.REFUSE, S.PENDING, hr.RPC_E_CALL_PENDING),
    (S.CANCELLING, In.BEGIN): (E.REFUSE, S.CANCELLING, hr.RPC_E_CALL_PENDING),
    (S.COMPLETED, In.BEGIN): (E.REFUSE, S.COMPLETED, hr.RPC_E_CALL_PENDING),
    (S.CANCELLED, In.BEGIN): (E.REFUSE, S.CANCELLED, hr.RPC_E_CALL_PENDING),
    (S.RELEASED, In.BEGIN): (E.REFUSE, S.RELEASED, hr.E_FAIL),
    # --- a reply is taken in (R22, R28) ------------------------------------------------
    (S.IDLE, In.REPLY): (E.DROP, S.IDLE, None),
    (S.PENDING, In.REPLY): (E.COMPLETE, S.COMPLETED, None),
    (S.CANCELLING, In.REPLY): (E.COMPLETE, S.COMPLETED, None),
    (S.COMPLETED, In.REPLY): (E.DROP, S.COMPLETED, None),
    (S.CANCELLED, In.REPLY): (E.DROP, S.CANCELLED, None),
    (S.RELEASED, In.REPLY): (E.DROP, S.RELEASED, None),
    (S.IDLE, In.REPLY_CANCELED): (E.DROP, S.IDLE, None),
    # a server may fail a call it was never asked to cancel with RPC_E_CALL_CANCELED:
    # that is an ordinary failed reply
    (S.PENDING, In.REPLY_CANCELED): (E.COMPLETE, S.COMPLETED, None),
    (S.CANCELLING, In.REPLY_CANCELED): (E.COMPLETE_CANCELLED, S.CANCELLED, None),
    (S.COMPLETED, In.REPLY_CANCELED): (E.DROP, S.COMPLETED, None),
    (S.CANCELLED, In.REPLY_CANCELED): (E.DROP, S.CANCELLED, None),
    (S.RELEASED, In.REPLY_CANCELED): (E.DROP, S.RELEASED, None),
    # --- Cancel (R28) --------------------------------------------------------------
    (S.IDLE, In.CANCEL_QUEUED): (E.STATUS, S.IDLE, hr.RPC_E_CALL_COMPLETE),
    (S.PENDING, In.CANCEL_QUEUED): (E.COMPLETE_CANCELLED, S.CANCELLED, hr.S_OK),
    (S.CANCELLING, In.CANCEL_QUEUED): (E.STATUS, S.CANCELLING, hr.RPC_E_CALL_CANCELED),
    (S.COMPLETED, In.CANCEL_QUEUED): (E.STATUS, S.COMPLETED, hr.RPC_E_CALL_COMPLETE),
    (S.CANCELLED, In.CANCEL_QUEUED): (E.STATUS, S.CANCELLED, hr.RPC_E_CALL_CANCELED),
    (S.RELEASED, In.CANCEL_QUEUED): (E.STATUS, S.RELEASED, hr.RPC_E_CALL_COMPLETE),
    (S.IDLE, In.CANCEL): (E.STATUS, S.IDLE, hr.RPC_E_CALL_COMPLETE),
    (S.PENDING, In.CANCEL): (E.TELL_SERVER, S.CANCELLING, None),
    (S.CANCELLING, In.CANCEL): (E.STATUS, S.CANCELLING, hr.RPC_E_CALL_CANCELED),
    (S.COMPLETED, In.CANCEL): (E.STATUS, S.COMPLETED, hr.RPC_E_CALL_COMPLETE),
    (S.CANCELLED, In.CANCEL): (E.STATUS, S.CANCELLED, hr.RPC_E_CALL_CANCELED),
    (S.RELEASED, In.CANCEL): (E.STATUS, S.RELEASED, hr.RPC_E_CALL_COMPLETE),
    (S.IDLE, In.GRACE_EXPIRED): (E.NOTHING, S.IDLE, None),
    (S.PENDING, In.GRACE_EXPIRED): (E.NOTHING, S.PENDING, None),
    (S.CANCELLING, In.GRACE_EXPIRED): (E.COMPLETE_CANCELLED, S.CANCELLED, hr.S_OK),
    (S.COMPLETED, In.GRACE_EXPIRED): (E.STATUS, S.COMPLETED, hr.RPC_E_CALL_COMPLETE),
    (S.CANCELLED, In.GRACE_EXPIRED): (E.NOTHING, S.CANCELLED, None),
    (S.RELEASED, In.GRACE_EXPIRED): (E.NOTHING, S.RELEASED, None),
    # --- TestCancel (R28) ----------------------------------------------------------
    (S.IDLE, In.TEST_CANCEL): (E.STATUS, S.IDLE, hr.RPC_E_CALL_COMPLETE),
    (S.PENDING, In.TEST_CANCEL): (E.STATUS, S.PENDING, hr.RPC_S_CALLPENDING),
    (S.CANCELLING, In.TEST_CANCEL): (E.STATUS, S.CANCELLING, hr.RPC_E_CALL_CANCELED),
    (S.COMPLETED, In.TEST_CANCEL): (E.STATUS, S.COMPLETED, hr.RPC_E_CALL_COMPLETE),
    (S.CANCELLED, In.TEST_CANCEL): (E.STATUS, S.CANCELLED, hr.RPC_E_CALL_CANCELED),
    (S.RELEASED, In.TEST_CANCEL): (E.STATUS, S.RELEASED, hr.RPC_E_CALL_COMPLETE),
    # --- Finish_ (R22) -------------------------------------------------------------
    (S.IDLE, In.FINISH): (E.REFUSE, S.IDLE, hr.RPC_E_CALL_COMPLETE),
    (S.PENDING, In.FINISH): (E.WAIT, S.PENDING, None),
    (S.CANCELLING, In.FINISH): (E.WAIT, S.CANCELLING, None),
    (S.COMPLETED, In.FINISH): (E.DELIVER, S.IDLE, None),
    (S.CANCELLED, In.FINISH): (E.RAISE_CANCELLED, S.IDLE, hr.RPC_E_CALL_CANCELED),
    (S.RELEASED, In.FINISH): (E.REFUSE, S.RELEASED, hr.E_FAIL),
    # --- the last Release (R25) ----------------------------------------------------
    (S.IDLE, In.RELEASE): (E.FORGET, S.RELEASED, None),
    (S.PENDING, In.RELEASE): (E.FORGET_IN_FLIGHT, S.RELEASED, hr.RPC_E_CALL_COMPLETE),
    (S.CANCELLING, In.RELEASE): (E.FORGET_IN_FLIGHT, S.RELEASED, hr.RPC_E_CALL_COMPLETE),
    (S.COMPLETED, In.RELEASE): (E.FORGET, S.RELEASED, None),
    (S.CANCELLED, In.RELEASE): (E.FORGET, S.RELEASED, None),
    (S.RELEASED, In.RELEASE): (E.NOTHING, S.RELEASED, None),
}

#: states in which the call has ended (the call object's event is signalled)
ENDED: Final = frozenset({S.COMPLETED, S.CANCELLED})

#: states in which a call is on its way: begun, its reply not yet taken in
IN_FLIGHT: Final = frozenset({S.PENDING, S.CANCELLING})


def keeps_manager(state: State) -> bool:
    """R19, R25, R34: a call object holds one count on its proxy manager from CreateCall on.
    Its last Release (FORGET) in ``state`` lets go of it at once, unless a call is on its way
    (FORGET_IN_FLIGHT): that call runs to its end (R25), so the manager, and with it the
    object (R7), stays until its reply is taken in (and dropped), as the call reaches the
    server before the release would in COM."""
    return state in IN_FLIGHT


class InvalidTransition(Exception):
    """A (state, input) pair the table does not hold: a bug in comsim."""


class CallMachine:
    """The state of one call object. ``step`` is the only way to change it."""

    __slots__ = ("state",)

    def __init__(self, state: State = S.IDLE) -> None:
        self.state = state

    def step(self, inp: Input) -> Transition:
        try:
            t = TABLE[(self.state, inp)]
        except KeyError:  # pragma: no cover - the table is total; a test checks it
            raise InvalidTransition(f"{self.state.value} x {inp.value}") from None
        self.state = t[1]
        return t

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    def __repr__(self) -> str:
        return f"<CallMachine {self.state.value}>"


#: the state of a call that has taken BEGIN (``CallMachine(BEGUN)`` is ``begun()`` written out)
BEGUN: Final = TABLE[(S.IDLE, In.BEGIN)][1]


def begun() -> CallMachine:
    """A new machine that has taken BEGIN: a synchronous call's, which begins as it is made.
    The same as ``CallMachine()`` then ``step(Input.BEGIN)``, with the state read from the
    table once."""
    return CallMachine(BEGUN)
