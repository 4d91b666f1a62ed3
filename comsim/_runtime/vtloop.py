"""``VirtualTimeLoop``: an asyncio loop whose clock jumps when nothing is ready to run, and
that fails instead of hanging when nothing can ever run again (a deadlock).

The deterministic runtime runs every apartment on it. With ``loop.ApartmentLoop``, this is one
of the two modules that touch asyncio's private internals (the loop's ``_scheduled``,
``_ready``, ``_ssock``, ``_signal_handlers`` and ``_clock_resolution``), each used where
asyncio has no public way.

Deadlock rule. asyncio asks its selector to wait with no time-out only when no callback is
ready and no timer is scheduled (a timer at ``inf`` counts as none: it never fires). Then only
an outside event can wake the loop: real I/O, a signal, or another thread posting through the
loop's self-pipe (``call_soon_threadsafe``). The loop is deadlocked when none can come:

- no file is registered besides the self-pipe, and no signal handler;
- no thread the loop knows of is at work for it: no ``run_in_executor`` job (so no
  ``asyncio.to_thread``) in flight, no busy anyio worker thread of this loop, no live threaded
  comsim runtime (its apartments' threads post to their callers), no subprocess watcher;
- and, for threads the loop cannot see, nothing arrives during a short real grace
  (``deadlock_grace``).

Then ``select`` raises the deadlock (``comsim.testing.Deadlock``, made by the hook the testing
package installs) out of the loop, and so out of ``anyio.run``, whose runner cancels the
remaining tasks and closes the loop.
"""
from __future__ import annotations

import asyncio
import math
import selectors
import threading
from collections.abc import Callable
from typing import Any

from .context import LIVE_RUNTIMES
from .loop import BusyLoopSelector


class _VirtualSelector(BusyLoopSelector):
    """An apartment loop's selector (it polls lazily while callbacks are ready) that never
    blocks while a timer is pending: it moves the clock instead."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        super().__init__(real)
        self._loop = loop

    def select(self, timeout: float | None = None
               ) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        scheduled = loop._scheduled  # type: ignore[attr-defined]
        if timeout is not None and timeout > 0 and scheduled[0]._when == math.inf:
            timeout = None  # only timers that never fire (``anyio.sleep_forever``)
        if timeout is None:
            return self._idle()
        if timeout <= 0:
            return super().select(timeout)  # callbacks are ready: poll now and then
        self._turns = 0
        events = self._real.select(0)
        if events:
            return events
        # jump to the next timer exactly: ``_clock_resolution`` makes asyncio run it now
        target = scheduled[0]._when
        if target > loop._vtime:
            loop._vtime = target
        return events

    def _idle(self) -> list[tuple[selectors.SelectorKey, int]]:
        """Nothing ready, no timer: wait for an outside event, or raise the deadlock."""
        self._turns = 0
        loop = self._loop
        events = self._real.select(0)
        grace = loop.deadlock_grace
        if events or grace is None or not loop._could_deadlock():
            return events or self._real.select(None)
        events = self._real.select(grace)
        if events or not loop._could_deadlock():
            return events  # the loop asks again, and then waits for real
        raise loop._deadlock()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop in virtual time: ``time()`` starts at 0 and advances only when nothing is
    ready to run, jumping straight to the next deadline. Real I/O and thread wake-ups still work;
    a loop with nothing scheduled waits for them for real, unless none can come: then it raises
    the deadlock (see the module's docstring) out of ``run_until_complete``.

    Raises:
        comsim.testing.Deadlock (a RuntimeError): from ``run_until_complete`` (so from
            ``anyio.run``, ``comsim.testing.run``), when nothing can ever run again.
    """

    #: seconds of wall time to wait, with nothing scheduled, for a thread the loop cannot see
    #: before it declares a deadlock; None turns deadlock detection off
    deadlock_grace: float | None = 0.1
    #: makes the exception a deadlocked loop raises (``comsim.testing`` installs its own)
    explain_deadlock: Callable[[asyncio.AbstractEventLoop], BaseException] | None = None

    def __init__(self) -> None:
        super().__init__()
        self._vtime = 0.0
        real: Any = self._selector  # type: ignore[has-type]
        self._selector = _VirtualSelector(real, self)
        #: ``run_in_executor`` jobs not yet done (a token each)
        self._thread_jobs: set[object] = set()
        self._deadlocked: BaseException | None = None

    def time(self) -> float:
        return self._vtime

    # asyncio runs the timers due before ``time() + _clock_resolution``: at least one step of
    # the float clock, so that a timer the clock jumped to exactly runs, however large the
    # time (1e-9 is lost to rounding above ~1e7 seconds, and the loop would spin)
    @property
    def _clock_resolution(self) -> float:
        return max(1e-9, math.ulp(self._vtime))

    @_clock_resolution.setter
    def _clock_resolution(self, value: float) -> None:
        pass  # asyncio's __init__ sets the real clock's

    def run_in_executor(self, executor: Any, func: Callable[..., Any],  # type: ignore[override]
                        *args: Any) -> asyncio.Future[Any]:
        """asyncio's, counting the job as in flight until it returns (a thread at work for
        the loop: no deadlock is declared meanwhile)."""
        jobs = self._thread_jobs
        token = object()
        jobs.add(token)

        def job() -> Any:
            try:
                return func(*args)
            finally:
                jobs.discard(token)

        try:
            return super().run_in_executor(executor, job)
        except BaseException:
            jobs.discard(token)
            raise

    def rewind(self) -> bool:
        """Make the loop as good as new for another program, so that many short runs need not
        each build a loop (exploration): leftover tasks are cancelled and run to their end,
        leftover callbacks and timers dropped, and the clock set back to 0. Gives False when
        the loop cannot be reused (closed, running, deadlocked, or a task would not end):
        then make a new one.
        """
        if self.is_closed() or self.is_running() or self._deadlocked is not None:
            return False
        tasks = [t for t in asyncio.all_tasks(self) if not t.done()]
        if tasks:
            for t in tasks:
                t.cancel()
            try:
                self.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            except BaseException:
                return False
            if self._deadlocked is not None or any(not t.done() for t in tasks):
                return False
        if self._thread_jobs:
            return False
        for handle in self._scheduled:  # type: ignore[attr-defined]
            handle.cancel()
        self._scheduled.clear()  # type: ignore[attr-defined]
        self._ready.clear()  # type: ignore[attr-defined]
        self._vtime = 0.0
        return True

    def _could_deadlock(self) -> bool:
        """Nothing the loop knows of can wake it (the module's docstring)."""
        if (self._ready or getattr(self, "_signal_handlers", None)  # type: ignore[attr-defined]
                or self._thread_jobs):
            return False
        own = self._ssock.fileno()  # type: ignore[attr-defined]
        if any(key.fd != own for key in self._selector.get_map().values()):
            return False
        if any(not rt._transport.deterministic for rt in list(LIVE_RUNTIMES)):
            return False
        for t in threading.enumerate():
            if t.name.startswith("waitpid-"):  # asyncio's subprocess watcher
                return False
            idle = getattr(t, "idle_workers", None)  # an anyio worker thread
            if (getattr(t, "loop", None) is self and idle is not None
                    and not getattr(t, "stopping", False) and t not in idle):
                return False
        return True

    def _deadlock(self) -> BaseException:
        """The exception to raise: made once (a deadlock during the cleanup raises it
        again)."""
        if self._deadlocked is None:
            explain = type(self).explain_deadlock
            plain = "deadlock: nothing can ever run again on the virtual-time loop"
            try:
                self._deadlocked = explain(self) if explain is not None else RuntimeError(plain)
            except Exception as exc:  # no report, but still no hang
                self._deadlocked = RuntimeError(f"{plain} (no report: {exc!r})")
        return self._deadlocked


def all_tasks_blocked(loop: asyncio.AbstractEventLoop) -> bool:
    """Nothing is ready to run on ``loop`` (every task waits)."""
    return not loop._ready  # type: ignore[attr-defined]
