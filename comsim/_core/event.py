"""An ``ISynchronize`` event's state (R23): who a ``Signal`` wakes, whether a wait succeeds.

Waiters are opaque tokens, kept in arrival order. An auto-reset event (``StdEvent``) wakes one
waiter, or stays set for the next wait, and a successful wait resets it; a manual-reset event
(``ManualResetEvent``, a call object's own event) stays set and wakes every waiter.
"""

from __future__ import annotations

from typing import Any


class EventState:
    __slots__ = ("auto_reset", "is_set", "waiters")

    def __init__(self, auto_reset: bool) -> None:
        self.auto_reset = auto_reset
        self.is_set = False  # before the first Signal it is clear (R23)
        self.waiters: list[Any] = []

    def signal(self) -> list[Any]:
        """Set the event; gives the waiters to wake."""
        if self.auto_reset:
            if self.waiters:
                return [self.waiters.pop(0)]  # the wake-up consumes the signal
            self.is_set = True
            return []
        self.is_set = True
        woken, self.waiters = self.waiters, []
        return woken

    def reset(self) -> None:
        self.is_set = False

    def try_wait(self) -> bool:
        """A wait that finds the event set succeeds at once (and resets an auto-reset one)."""
        if not self.is_set:
            return False
        if self.auto_reset:
            self.is_set = False
        return True

    def add_waiter(self, token: Any) -> None:
        self.waiters.append(token)

    def remove_waiter(self, token: Any) -> None:
        """A waiter gave up (time-out or cancel) before it was woken."""
        for i, t in enumerate(self.waiters):
            if t is token:
                del self.waiters[i]
                return

    def woken_too_late(self) -> bool:
        """A woken waiter had already given up: an auto-reset signal must not be lost, so the
        caller signals again. Gives whether it must."""
        return self.auto_reset
