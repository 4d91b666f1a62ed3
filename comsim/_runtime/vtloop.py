"""``VirtualTimeLoop``: an asyncio loop whose clock jumps when nothing is ready to run.

The deterministic runtime runs every apartment on it. With ``loop.ApartmentLoop``, this is one
of the two modules that touch asyncio's private internals (the loop's ``_scheduled`` and
``_ready``), each used where asyncio has no public way.
"""
from __future__ import annotations

import asyncio
import selectors
from typing import Any

from .loop import BusyLoopSelector


class _VirtualSelector(BusyLoopSelector):
    """An apartment loop's selector (it polls lazily while callbacks are ready) that never
    blocks while a timer is pending: it moves the clock instead."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        super().__init__(real)
        self._loop = loop

    def select(self, timeout: float | None = None
               ) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= 0:
            # nothing scheduled: wait for real (another thread may post); or callbacks are
            # ready: poll now and then
            return super().select(timeout)
        self._turns = 0
        events = self._real.select(0)
        if events:
            return events
        loop = self._loop
        scheduled = loop._scheduled  # type: ignore[attr-defined]
        target = scheduled[0]._when if scheduled else loop._vtime + timeout
        if target > loop._vtime:
            loop._vtime = target
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop in virtual time: ``time()`` starts at 0 and advances only when nothing is
    ready to run, jumping straight to the next deadline. Real I/O and thread wake-ups still work;
    a loop with nothing scheduled at all waits for them for real."""

    def __init__(self) -> None:
        super().__init__()
        self._vtime = 0.0
        real: Any = self._selector  # type: ignore[has-type]
        self._selector = _VirtualSelector(real, self)
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._vtime




def all_tasks_blocked(loop: asyncio.AbstractEventLoop) -> bool:
    """Nothing is ready to run on ``loop`` (every task waits)."""
    return not loop._ready  # type: ignore[attr-defined]
