"""When an STA may start a unit, and when a waiting unit may resume (R2, R16).

An STA runs *units* (incoming calls, ``Apartment.run`` work) one at a time, in arrival order.
While the unit on top of the stack is in a COM wait, the next queued unit starts nested on top
of it. A unit whose wait has ended resumes only once it is on top again (last in, first out).

Pure bookkeeping: each method returns the actions the runtime must carry out.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from .constants import PENDINGMSG_CANCELCALL, PENDINGMSG_WAITNOPROCESS


class UnitKind(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    CALL = "call"  # an incoming COM call
    RUN = "run"  # Apartment.run work


class WaitKind(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    CALL = "call"  # an outgoing synchronous call through a proxy
    OTHER = "other"  # Finish_, ISynchronize.Wait, Cancel's grace, a retry delay


class Unit:
    """One unit of work of an STA: an incoming call or an ``Apartment.run``."""

    __slots__ = ("consulted", "held_by", "kind", "payload", "waits")

    def __init__(self, kind: UnitKind, payload: Any = None) -> None:
        self.kind = kind
        self.payload = payload
        self.waits: list[Wait] = []
        self.held_by: Wait | None = None  # MessagePending said: not during this wait
        self.consulted: tuple[Wait, ...] = ()  # waits MessagePending was asked about

    @property
    def in_com_wait(self) -> bool:
        for w in self.waits:
            if not w.ready:
                return True
        return False

    def __repr__(self) -> str:
        return f"<Unit {self.kind.value} waits={len(self.waits)}>"


class Wait:
    """One COM wait of a unit."""

    __slots__ = ("causality_id", "ended", "gate", "kind", "payload", "ready", "unit")

    def __init__(self, unit: Unit, kind: WaitKind, causality_id: int | None = None,
                 payload: Any = None) -> None:
        self.unit = unit
        self.kind = kind
        self.causality_id = causality_id  # of the outgoing call waited on
        self.payload = payload  # what is waited on (the outgoing call), for MessagePending
        self.gate: Any = None  # the runtime's handle to wake the waiter when it may resume
        self.ready = False  # the condition waited for has happened
        self.ended = False  # the wait is over and the unit runs again


class Start:
    """Start this unit now."""

    __slots__ = ("unit",)

    def __init__(self, unit: Unit) -> None:
        self.unit = unit


class Resume:
    """This wait is over and its unit is on top: let the waiter go on."""

    __slots__ = ("wait",)

    def __init__(self, wait: Wait) -> None:
        self.wait = wait


class CancelOutgoing:
    """MessagePending answered PENDINGMSG_CANCELCALL: fail this outgoing call."""

    __slots__ = ("wait",)

    def __init__(self, wait: Wait) -> None:
        self.wait = wait


Action = Start | Resume | CancelOutgoing
#: asks the message filter about a run unit while the STA waits in an outgoing call:
#: (unit, wait, nested) -> PENDINGMSG_*
Consult = Callable[[Unit, Wait, bool], int]


def nested_outgoing(wait: Wait) -> bool:
    """R16: is the outgoing call of ``wait`` nested (PENDINGTYPE_NESTED)? It is when it was
    made while handling an incoming call, that is by a unit that is an incoming call (tasks a
    server method spawns belong to its unit). A call made by ``Apartment.run`` work is
    top-level, however deep that unit sits on the stack."""
    return wait.unit.kind is UnitKind.CALL


class StaScheduler:
    """One STA's queue of units and its stack of started ones."""

    def __init__(self) -> None:
        self.queue: list[Unit] = []
        self.stack: list[Unit] = []
        self.consult: Consult | None = None

    # -- questions -------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return not self.stack

    @property
    def top(self) -> Unit | None:
        return self.stack[-1] if self.stack else None

    def innermost_wait(self) -> Wait | None:
        """The newest unfinished wait of the unit on top, if it is in a COM wait."""
        top = self.top
        if top is None:
            return None
        for w in reversed(top.waits):
            if not w.ready:
                return w
        return None

    # -- inputs ------------------------------------------------------------------------
    def start_if_idle(self, unit: Unit) -> bool:
        """An idle STA starts a unit at once (R2): True if ``unit`` has started (it is on the
        stack now). False: nothing was done; ``arrive`` queues it. The fast path of
        ``arrive``, for the common case of a call into an idle STA."""
        if self.stack or self.queue:
            return False
        self.stack.append(unit)
        return True

    def arrive(self, unit: Unit) -> list[Action]:
        if self.start_if_idle(unit):
            return [Start(unit)]
        self.queue.append(unit)
        return self._pump()

    def withdraw(self, unit: Unit) -> bool:
        """Take a unit that has not started out of the queue; False if it is not there."""
        try:
            self.queue.remove(unit)
        except ValueError:
            return False
        return True

    def begin_wait(self, unit: Unit, kind: WaitKind, causality_id: int | None = None,
                   payload: Any = None) -> tuple[Wait, list[Action]]:
        w = Wait(unit, kind, causality_id, payload)
        unit.waits.append(w)
        stack = self.stack
        return w, (self._pump() if self.queue and stack and unit is stack[-1] else [])

    def wait_ready(self, w: Wait) -> list[Action]:
        """The condition of ``w`` has happened; it resumes when its unit is on top.

        If it may go on at once, ``w.ended`` is True on return (the waiter is the one who asks,
        so no ``Resume`` is given for ``w``); otherwise a ``Resume`` comes from a later ``end``.
        The actions returned are for other units (queued ones that may start now).
        """
        if w.ready:
            return []
        w.ready = True
        unit = w.unit
        stack = self.stack
        if (stack and unit is stack[-1]) or unit not in stack:
            w.ended = True
            unit.waits.remove(w)
        queue = self.queue
        if not queue:
            return []
        for u in queue:  # units held for the duration of this wait are free again
            if u.held_by is w:
                u.held_by = None
        return self._pump()

    def end(self, unit: Unit) -> list[Action]:
        """``unit`` has ended (also when it never started properly)."""
        stack = self.stack
        if stack and stack[-1] is unit:
            stack.pop()
            if not stack and not self.queue:
                return []  # the STA is idle again
        elif unit in stack:
            stack.remove(unit)
        else:
            self.withdraw(unit)
        actions: list[Action] = []
        top = self.top
        if top is not None:
            for w in list(top.waits):
                if w.ready and not w.ended:
                    actions.append(self._resume(w))
        return actions + self._pump()

    # -- internals ---------------------------------------------------------------------
    def _resume(self, w: Wait) -> Resume:
        w.ended = True
        try:
            w.unit.waits.remove(w)
        except ValueError:
            pass
        return Resume(w)

    def _pump(self) -> list[Action]:
        actions: list[Action] = []
        while self.queue:
            top = self.top
            if top is not None and not top.in_com_wait:
                break
            wait = self.innermost_wait()
            unit = self._next_admissible(wait, actions)
            if unit is None:
                break
            self.queue.remove(unit)
            self.stack.append(unit)
            actions.append(Start(unit))
        return actions

    def _next_admissible(self, wait: Wait | None, actions: list[Action]) -> Unit | None:
        for unit in self.queue:
            if unit.held_by is not None and not unit.held_by.ready:
                continue
            if (unit.kind is UnitKind.RUN and wait is not None and wait.kind is WaitKind.CALL
                    and self.consult is not None and not any(c is wait for c in unit.consulted)):
                unit.consulted = (*unit.consulted, wait)
                answer = self.consult(unit, wait, nested_outgoing(wait))
                if answer == PENDINGMSG_WAITNOPROCESS:
                    unit.held_by = wait
                    continue
                if answer == PENDINGMSG_CANCELCALL:
                    unit.held_by = wait
                    actions.append(CancelOutgoing(wait))
                    continue
                # PENDINGMSG_WAITDEFPROCESS (and any other answer) lets it in
            elif unit.held_by is not None and unit.held_by.ready:
                unit.held_by = None
            return unit
        return None
