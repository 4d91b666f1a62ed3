"""The server side of one call: where the request is, as a transition table (R28, R29).

The client's ``Cancel`` and the server's dispatch race for the same request; the runtime feeds
both inputs to this table under one lock, so the decision is atomic: a request that the cancel
finds ``WAITING`` (sent, queued, not yet taken in, or rejected and not yet retried) is dropped
and never dispatched.

Every other input comes from the server's own thread, and ``CANCEL`` is the only input from
another thread. ``CANCEL`` changes the stage only from ``WAITING``, and a step that leaves the
stage as it is writes nothing. So ``RETURN``, which happens only once the call is ``RUNNING``,
needs no lock: a ``CANCEL`` racing it reads ``RUNNING`` or ``RETURNED``, gives ``SEND_CANCEL``
either way, and cannot write the stage back.
"""

from __future__ import annotations

import enum
from typing import Final


class Stage(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    WAITING = "waiting"  # sent, not dispatched
    RUNNING = "running"  # the server method runs
    RETURNED = "returned"  # the server method has returned; the reply is on its way
    DROPPED = "dropped"  # cancelled before dispatch: never dispatched


class Input(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    DISPATCH = "dispatch"  # the server is about to run the method
    REJECT = "reject"  # the message filter rejected this dispatch (R16)
    CANCEL = "cancel"  # the client asks, at the moment of Cancel
    CANCEL_ARRIVES = "cancel_arrives"  # the cancel message reaches the server
    RETURN = "return"  # the server method is done


class Effect(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    RUN = "run"
    SKIP = "skip"  # do not run: the call was cancelled while queued
    DROPPED_QUEUED = "dropped_queued"  # Cancel wins: stage `queued`, Cancel gives S_OK at once
    SEND_CANCEL = "send_cancel"  # the server is past dispatch: tell it
    TELL_RUNNING = "tell_running"  # stage `running`: set the flag, interrupt if the policy says
    TOO_LATE = "too_late"  # stage `finished`: the work is done
    REPLY = "reply"
    NOTHING = "nothing"


G = Stage
I = Input  # noqa: E741
X = Effect

TABLE: Final[dict[tuple[Stage, Input], tuple[Effect, Stage]]] = {
    (G.WAITING, I.DISPATCH): (X.RUN, G.RUNNING),
    (G.DROPPED, I.DISPATCH): (X.SKIP, G.DROPPED),
    (G.WAITING, I.REJECT): (X.NOTHING, G.WAITING),
    (G.DROPPED, I.REJECT): (X.NOTHING, G.DROPPED),
    (G.WAITING, I.CANCEL): (X.DROPPED_QUEUED, G.DROPPED),
    (G.RUNNING, I.CANCEL): (X.SEND_CANCEL, G.RUNNING),
    (G.RETURNED, I.CANCEL): (X.SEND_CANCEL, G.RETURNED),
    (G.DROPPED, I.CANCEL): (X.NOTHING, G.DROPPED),
    (G.WAITING, I.CANCEL_ARRIVES): (X.NOTHING, G.WAITING),
    (G.RUNNING, I.CANCEL_ARRIVES): (X.TELL_RUNNING, G.RUNNING),
    (G.RETURNED, I.CANCEL_ARRIVES): (X.TOO_LATE, G.RETURNED),
    (G.DROPPED, I.CANCEL_ARRIVES): (X.NOTHING, G.DROPPED),
    (G.RUNNING, I.RETURN): (X.REPLY, G.RETURNED),
}


class StubCall:
    """Where one request stands on the server side. The runtime's record of a call is a
    ``StubCall`` itself (a subclass), so no object is made for this per call."""

    __slots__ = ("stage",)

    def __init__(self) -> None:
        self.stage = Stage.WAITING

    def step(self, inp: Input) -> Effect:
        """Take ``inp``; the stage is written only when it changes (see the module's text).

        The stage is read once: a second read could see a ``RETURN`` that the server's thread
        took meanwhile, and the step would then write the stage it read first back over it.
        """
        current = self.stage
        effect, stage = TABLE[(current, inp)]
        if stage is not current:
            self.stage = stage
        return effect


class CancelReport:
    """Joins the two halves of R29's trace event.

    ``call.cancelled`` is traced once the client has ended the call cancelled *and* the stage is
    known (``queued`` at once; ``running``/``finished`` when the cancel reaches the server).
    Each ``note_*`` returns the stage when the event is due now, else None.
    """

    __slots__ = ("_client_ended", "_done", "_stage")

    def __init__(self) -> None:
        self._client_ended = False
        self._stage: str | None = None
        self._done = False

    def note_client_ended(self) -> str | None:
        self._client_ended = True
        return self._due()

    def note_stage(self, stage: str) -> str | None:
        if self._stage is None:
            self._stage = stage
        return self._due()

    def _due(self) -> str | None:
        if self._client_ended and self._stage is not None and not self._done:
            self._done = True
            return self._stage
        return None


class Connection(enum.Enum):
    """An object's stub (R17)."""

    __hash__ = object.__hash__  # identity: table lookups stay in C

    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"  # CoDisconnectObject while calls still run
    DISCONNECTED = "disconnected"


def request_status(conn: Connection) -> int | None:
    """R17: what a request to an object answers before it runs; None: let it run."""
    from . import hresult as hr

    if conn is Connection.CONNECTED:
        return None
    if conn is Connection.DISCONNECTING:
        return hr.CO_E_OBJNOTCONNECTED
    return hr.RPC_E_DISCONNECTED


def after_disconnect(running_calls: int) -> Connection:
    """R17: CoDisconnectObject leaves the stub disconnecting until running calls finish."""
    return Connection.DISCONNECTING if running_calls else Connection.DISCONNECTED
