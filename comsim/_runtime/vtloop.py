"""``VirtualTimeLoop``: an asyncio loop whose clock jumps when nothing is ready to run, and
that fails instead of hanging when nothing can ever run again (a deadlock), or, with a
``jump_limit``, when its clock jumps for ever (a livelock: ``loop.past_jump_limit``).

The deterministic runtime runs every apartment on it. With ``loop.ApartmentLoop``, this is one
of the two modules that touch asyncio's private internals (the loop's ``_scheduled``, ``_ready``,
``_stopping``, ``_debug``, ``_ssock``, ``_signal_handlers``, ``_clock_resolution``; handles'
fields), each where asyncio has no public way: turns of its own (``_run_once``: asyncio's
steps, lighter, one call for every turn until a stop), one-frame ``call_soon``, ``call_later``,
``call_at``, ``create_future`` and ``create_task``, and the deterministic pump's hand-off
(``runs_next``, ``call_soon_at``). Its selector is ``loop.VirtualSelector``.

Deadlock rule. asyncio asks its selector to wait with no time-out only when no callback is
ready and no timer is scheduled (a timer at ``inf`` never fires: it counts as none). Then only
an outside event can wake the loop (real I/O, a signal, another thread's
``call_soon_threadsafe``), and the loop is deadlocked when none can come: no file registered
besides the self-pipe, no signal handler; no thread the loop knows of at work for it (a
``run_in_executor`` job, a busy anyio worker thread of this loop, a live threaded comsim
runtime, a subprocess watcher); and, for threads it cannot see, nothing in a real grace
(``deadlock_grace``). Then the selector's ``select`` raises the deadlock
(``comsim.testing.Deadlock``, made by the testing package's hook) out of ``anyio.run``.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import math
import threading
import warnings
from collections.abc import Callable
from contextvars import copy_context
from types import CoroutineType
from typing import Any

from .context import LIVE_RUNTIMES, note_task
from .loop import Handle, TimerHandle, VirtualSelector, callback_failed, new_handle, past_jump_limit

# asyncio's own thresholds (``asyncio.base_events``), for ``VirtualTimeLoop._run_once``
_MIN_SCHEDULED_TIMER_HANDLES = 100
_MIN_CANCELLED_TIMER_HANDLES_FRACTION = 0.5
_MAXIMUM_SELECT_TIMEOUT = 24 * 3600
#: for ``VirtualTimeLoop.run_until_complete``: asyncio's own done callback, and its check
_until_complete = asyncio.base_events._run_until_complete_cb  # type: ignore[attr-defined]
_running_loop = asyncio.events._get_running_loop


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop in virtual time: ``time()`` starts at 0 and advances only when nothing is
    ready to run, jumping straight to the next deadline. Real I/O and thread wake-ups still work;
    a loop with nothing scheduled waits for them for real, unless none can come.

    Raises (from ``run_until_complete``, so from ``anyio.run``, ``comsim.testing.run``):
        comsim.testing.Deadlock (a RuntimeError): nothing can ever run again.
        comsim.testing.JumpLimitExceeded (a RuntimeError): the clock jumped ``jump_limit`` times.
    """

    #: wall seconds to wait, with nothing scheduled, for a thread the loop cannot see before it
    #: declares a deadlock (None: never); virtual seconds ``rewind`` waits for a run's tasks
    deadlock_grace: float | None = 0.1
    rewind_grace = 60.0
    jump_limit: float = math.inf  #: the most jumps of the clock from ``rewind`` on
    #: makes the exception a deadlocked loop raises (``comsim.testing`` installs its own)
    explain_deadlock: Callable[[asyncio.AbstractEventLoop], BaseException] | None = None

    def __init__(self) -> None:
        super().__init__()
        self._vtime = 0.0
        real: Any = self._selector  # type: ignore[has-type]
        self._selector = VirtualSelector(real, self)
        #: ``run_in_executor`` jobs not yet done (a token each)
        self._thread_jobs: set[object] = set()
        self._deadlocked: BaseException | None = None
        self._jumps = 0  # of the clock, since ``rewind`` (``jump_limit``)
        #: ``time()`` without a Python frame (every deterministic call asks it)
        self.clock: Callable[[], float] = functools.partial(getattr, self, "_vtime")
        #: ``get_debug`` without a Python frame (every new future asks it; ``set_debug``)
        debug = self._debug  # type: ignore[attr-defined]
        self.get_debug: Callable[[], bool] = itertools.repeat(debug).__next__
        self._made: list[asyncio.Task[Any]] = []  # tasks made since ``rewind``
        self._made_limit = 256
        #: how many callbacks are ready (the ready queue's own ``__len__``: no Python frame)
        self.ready_count: Callable[[], int] = self._ready.__len__  # type: ignore[attr-defined]
        #: ``create_future`` without a Python frame (asyncio's makes ``Future(loop=self)``)
        self.create_future = functools.partial(asyncio.Future, loop=self)  # type: ignore[method-assign]

    def time(self) -> float:
        return self._vtime

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(enabled)
        self.get_debug = itertools.repeat(self._debug).__next__  # type: ignore[attr-defined]

    # asyncio runs the timers due before ``time() + _clock_resolution``: one float step at
    # least, so that a timer the clock jumped to runs (above ~1e7 s, 1e-9 is lost)
    @property
    def _clock_resolution(self) -> float:
        return max(1e-9, math.ulp(self._vtime))

    @_clock_resolution.setter
    def _clock_resolution(self, value: float) -> None:  # asyncio's __init__ sets the real one
        pass

    # asyncio's call_soon, call_later and call_at, the same outside debug mode, in one frame
    def call_soon(self, callback: Callable[..., Any], *args: Any,  # type: ignore[override]
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        this: Any = self
        if this._debug:
            return super().call_soon(callback, *args, context=context)
        if this._closed:
            this._check_closed()
        handle: Any = new_handle(Handle)
        handle._context = context if context is not None else copy_context()
        handle._loop = self
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        this._ready.append(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any],  # type: ignore[override]
                   *args: Any, context: contextvars.Context | None = None
                   ) -> asyncio.TimerHandle:
        this: Any = self
        if delay is None:
            raise TypeError("delay must not be None")
        when = this._vtime + delay
        if when == math.inf and delay != math.inf:  # past the clock's end: a timer at its end
            when = math.nextafter(math.inf, 0.0)  # (one at inf never fires: a false deadlock)
        if this._debug:
            return super().call_at(when, callback, *args, context=context)
        if this._closed:
            this._check_closed()
        timer: Any = new_handle(TimerHandle)  # ``call_at``'s, written out
        timer._context = context if context is not None else copy_context()
        timer._loop = self
        timer._callback = callback
        timer._args = args
        timer._cancelled = False
        timer._repr = None
        timer._source_traceback = None
        timer._when = when
        heapq.heappush(this._scheduled, timer)
        timer._scheduled = True
        return timer

    def call_at(self, when: float, callback: Callable[..., Any],  # type: ignore[override]
                *args: Any, context: contextvars.Context | None = None
                ) -> asyncio.TimerHandle:
        this: Any = self
        if this._debug:
            return super().call_at(when, callback, *args, context=context)
        if when is None:
            raise TypeError("when cannot be None")
        if this._closed:
            this._check_closed()
        timer: Any = new_handle(TimerHandle)
        timer._context = context if context is not None else copy_context()
        timer._loop = self
        timer._callback = callback
        timer._args = args
        timer._cancelled = False
        timer._repr = None
        timer._source_traceback = None
        timer._when = when
        heapq.heappush(this._scheduled, timer)
        timer._scheduled = True
        return timer

    def _run_once(self) -> None:
        """Turns until a stop is asked (``run_forever``'s loop checks ``_stopping`` after each
        call). A turn is asyncio's, the same steps, lighter (not in debug mode): the selector
        is polled every 16th busy turn only (``BusyLoopSelector``), a jump of the clock to the
        next timer needs no call of it, due timers are taken at the virtual clock, and each
        callback is run as its handle's ``_run`` would run it, without that frame."""
        this: Any = self  # asyncio's private attributes, untyped
        if this._debug:
            super()._run_once()  # type: ignore[misc]
            return
        ready = this._ready
        selector = this._selector
        popleft = ready.popleft
        while True:
            scheduled: list[Any] = this._scheduled
            n = len(scheduled)
            if n:
                if (n > _MIN_SCHEDULED_TIMER_HANDLES and this._timer_cancelled_count / n
                        > _MIN_CANCELLED_TIMER_HANDLES_FRACTION):
                    kept = []
                    for handle in scheduled:
                        if handle._cancelled:
                            handle._scheduled = False
                        else:
                            kept.append(handle)
                    heapq.heapify(kept)
                    this._scheduled = scheduled = kept
                    this._timer_cancelled_count = 0
                else:
                    while scheduled and scheduled[0]._cancelled:
                        this._timer_cancelled_count -= 1
                        handle = heapq.heappop(scheduled)
                        handle._scheduled = False
            if ready or this._stopping:
                # ``selector.select(0)``, inline: the real selector every 16th turn
                selector._turns += 1
                if not selector._turns & 15:
                    selector._turns = 0
                    events = selector._real.select(0)
                    if events:
                        this._process_events(events)
            elif (scheduled and scheduled[0]._when > this._vtime
                  and scheduled[0]._when != math.inf and not selector._others
                  and not getattr(this, "_signal_handlers", None)):
                # ``selector.select(timeout)``, inline, where it jumps to the next timer
                selector._turns = 0
                this._jumps += 1
                if this._jumps > this.jump_limit:
                    raise past_jump_limit(this)
                this._vtime = scheduled[0]._when
            else:
                timeout = None
                if scheduled:
                    timeout = min(max(0, scheduled[0]._when - this._vtime),
                                  _MAXIMUM_SELECT_TIMEOUT)
                events = selector.select(timeout)
                if events:
                    this._process_events(events)
                events = None  # no cycle through an exception
            if scheduled:
                now = this._vtime
                resolution = math.ulp(now)  # ``_clock_resolution``
                end_time = now + (resolution if resolution > 1e-9 else 1e-9)
                while scheduled and scheduled[0]._when < end_time:
                    handle = heapq.heappop(scheduled)
                    handle._scheduled = False
                    ready.append(handle)
            for _ in range(len(ready)):
                handle = popleft()
                if handle._cancelled:
                    continue
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    callback_failed(self, handle, exc)
            handle = None  # no cycle through an exception
            if this._stopping or this._debug:
                return

    def run_until_complete(self, future: Any) -> Any:
        """asyncio's, the same steps; for a coroutine (a run's program) without the frames of
        its checks and of ``ensure_future`` (whose ``isfuture`` fails a lookup, twice)."""
        this: Any = self
        if type(future) is not CoroutineType or this._debug or this._task_factory is not None:
            return super().run_until_complete(future)
        if this._closed or this._thread_id is not None or _running_loop() is not None:
            this._check_closed()
            this._check_running()
        task: Any = self.create_task(future)
        task._log_destroy_pending = False
        task.add_done_callback(_until_complete)
        try:
            self.run_forever()
        except BaseException:
            if task.done() and not task.cancelled():
                task.exception()
            raise
        finally:
            task.remove_done_callback(_until_complete)
        if not task.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return task.result()

    def create_task(self, coro: Any, *, name: str | None = None,  # type: ignore[override]
                    context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        """asyncio's, keeping the task for ``rewind`` (which so need not go through
        ``asyncio.all_tasks``, every task of every loop not yet collected)."""
        this: Any = self
        if this._task_factory is None and not this._debug and not this._closed:
            task = asyncio.Task(coro, loop=self, name=name, context=context)  # asyncio's, inline
        else:
            task = super().create_task(coro, name=name, context=context)
        note_task(task, context)  # made by code in an apartment? its teardown ends it (R18)
        made = self._made
        made.append(task)
        if len(made) > self._made_limit:  # a long program: forget the tasks that are done
            self.forget_done_tasks()
            self._made_limit = max(256, 2 * len(made))
        return task

    def forget_done_tasks(self) -> None:
        """Let go of the finished tasks made since ``rewind`` (a run's: freed before the next)."""
        self._made[:] = [t for t in self._made if not t.done()]

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """asyncio's, waiting for the threads however long: a virtual time-out passes at once."""
        await super().shutdown_default_executor()

    def run_in_executor(self, executor: Any, func: Callable[..., Any],  # type: ignore[override]
                        *args: Any) -> asyncio.Future[Any]:
        """asyncio's; the job is in flight until it returns (no deadlock is declared)."""
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
        """Make the loop as good as new for another program (exploration's many short runs):
        leftover tasks cancelled and run to their end (``rewind_grace``), callbacks and timers
        dropped, the clock set to 0. False: the loop cannot be reused (closed, running,
        deadlocked, a task would not end: warned); make a new one."""
        if self.is_closed() or self.is_running() or self._deadlocked is not None:
            return False
        made = self._made
        tasks = [t for t in made if not t.done()]
        made.clear()
        if tasks:
            for t in tasks:
                t.cancel()
            try:  # in virtual time: a task that swallows its cancellation is not waited for
                self.run_until_complete(asyncio.wait(tasks, timeout=self.rewind_grace))
            except BaseException:
                return False
            if left := [t for t in tasks if not t.done()]:
                warnings.warn(f"comsim: a task left by the last run ignores its cancellation "
                              f"({left[0]!r}); a new loop replaces this one", RuntimeWarning,
                              stacklevel=3)
            if self._deadlocked is not None or left:
                return False
        if self._thread_jobs:
            return False
        for handle in self._scheduled:  # type: ignore[attr-defined]
            handle.cancel()
        self._scheduled.clear()  # type: ignore[attr-defined]
        self._ready.clear()  # type: ignore[attr-defined]
        self._vtime = 0.0
        self._jumps = 0
        return True

    # the deterministic pump's hand-off (``DeterministicTransport._deliver``): below
    def runs_next(self) -> bool:
        """Whether a callback ``call_soon`` made now would be all that the loop's next turn
        runs: nothing else ready, no timer due, no stop asked. Its work may then be done now,
        in place: the same order of events, one loop turn fewer."""
        if self._ready or self._stopping:  # type: ignore[attr-defined]
            return False
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if scheduled:
            now = self._vtime
            resolution = math.ulp(now)  # ``_clock_resolution``
            if scheduled[0]._when < now + (resolution if resolution > 1e-9 else 1e-9):
                return False  # a timer is due: the next turn runs it too
        return True

    def call_soon_at(self, index: int, callback: Callable[[], Any],
                     context: contextvars.Context) -> None:
        """``call_soon(callback, context=context)`` as if made when ``ready_count()`` was
        ``index``: queued behind the callbacks ready then, ahead of those made since (while a
        callback runs, the ready queue only grows)."""
        ready = self._ready  # type: ignore[attr-defined]
        handle = Handle(callback, (), self, context)
        if index >= len(ready):
            ready.append(handle)
        else:
            ready.insert(index, handle)

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
