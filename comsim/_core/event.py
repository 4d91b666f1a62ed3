"""An ``ISynchronize`` event's state (R23): who a ``Signal`` wakes, whether a wait succeeds, and
whether a signal whose waiter did not take it goes back to the event (``HANDS_BACK``).

Waiters are opaque tokens, kept in arrival order. An auto-reset event (``StdEvent``) wakes one
waiter, or stays set for the next wait, and a successful wait resets it; a manual-reset event
(``ManualResetEvent``, a call object's own event) stays set and wakes every waiter.

A signal that woke a waiter is consumed only if that waiter's ``Wait`` gives ``S_OK``. The
wake-up may reach a waiter that has already given up (time-out or cancel: ``End.LATE``), or
reach it in time while its task is cancelled before its ``Wait`` returns (``End.ABANDONED``:
the wake-up was taken in, then the cancel; in an STA the waiter resumes only on top, R2, so
the window is as long as the units nested above it last). Then an auto-reset event's signal
goes back to the event: it wakes the next waiter or stays set, exactly as if it had just come
-- unless the event was reset since that signal came: a ``Reset`` after a ``Signal`` leaves the
event clear, and no signal handed back later may set it again.
"""

from __future__ import annotations

import enum
from typing import Any, Final


class End(enum.Enum):
    """How the part of a waiter that ``signal`` chose ended."""

    __hash__ = object.__hash__  # identity: table lookups stay in C
    RETURNED = "returned"  # woken while waiting; its Wait gave S_OK
    ABANDONED = "abandoned"  # woken while waiting; its Wait then raised (its task was cancelled)
    LATE = "late"  # the wake-up came after it had given up (time-out, cancel, its loop gone)


#: (auto-reset?, how the chosen waiter's part ended, reset since the signal?) -> whether the
#: signal goes back to the event (R23)
HANDS_BACK: Final[dict[tuple[bool, End, bool], bool]] = {
    (True, End.RETURNED, False): False,  # the successful wait consumed it (and reset the event)
    (True, End.ABANDONED, False): True,  # nobody got it: it must not be lost
    (True, End.LATE, False): True,
    # a Reset after the signal cleared it anyway
    (True, End.RETURNED, True): False,
    (True, End.ABANDONED, True): False,
    (True, End.LATE, True): False,
    # a manual-reset event stays set and wakes everyone: a waiter consumes nothing
    (False, End.RETURNED, False): False,
    (False, End.ABANDONED, False): False,
    (False, End.LATE, False): False,
    (False, End.RETURNED, True): False,
    (False, End.ABANDONED, True): False,
    (False, End.LATE, True): False,
}


class EventState:
    __slots__ = ("auto_reset", "is_set", "resets", "waiters")

    def __init__(self, auto_reset: bool) -> None:
        self.auto_reset = auto_reset
        self.is_set = False  # before the first Signal it is clear (R23)
        self.resets = 0  # how many times it was reset: a signal's wake-up carries it along
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
        self.resets += 1

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

    def woken_ends(self, end: End, resets: int) -> list[Any]:
        """The waiter that ``signal`` chose ended so (``End``); ``resets``: the count when that
        signal came. Gives the waiters to wake now: if the signal goes back (``HANDS_BACK``),
        the event is signalled again."""
        if HANDS_BACK[(self.auto_reset, end, resets != self.resets)]:
            return self.signal()
        return []
