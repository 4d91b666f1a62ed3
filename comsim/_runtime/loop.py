"""The threaded runtime's apartment loops: lazy polls while busy, one read per wake-up, and a
wake-up that makes no handle per message; ``resume``, a hand-off that costs one loop turn;
``Handle`` and ``TimerHandle``, made without asking the loop for its debug mode (or without
``__init__``: ``new_handle``); ``callback_failed``, what a failed callback reports; and
``VirtualSelector``, the virtual-time loop's selector, with the deadlock it raises
(``deadlock_of``).

With ``vtloop``, this is one of the two modules that touch asyncio's private internals (the
loop's self-pipe, a future's callbacks, 3.11's current-task dict, the virtual-time loop's
timers); each use falls back to the public path where the internal is missing.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
import selectors
import sys
from asyncio import format_helpers
from collections.abc import Callable
from typing import Any

from .futures import call_in_loop, settle

__all__ = [
    "ApartmentLoop",
    "BusyLoopSelector",
    "Handle",
    "JumpLimitExceeded",
    "TimerHandle",
    "VirtualSelector",
    "callback_failed",
    "current_task",
    "deadlock_of",
    "new_handle",
    "past_jump_limit",
    "resume",
]


class BusyLoopSelector(selectors.BaseSelector):
    """An apartment loop's selector. While callbacks are ready to run, the loop asks the OS for
    I/O only every 16th turn: a turn with nothing to poll is a system call saved, twice per
    call. Messages from other apartments do not wait for it (their wake-up puts the inbox's
    handler straight on the ready queue); only real I/O done by user code may wait up to 15
    turns of a busy loop. With nothing ready, the loop waits for I/O as usual."""

    def __init__(self, real: selectors.BaseSelector) -> None:
        self._real = real
        self._turns = 0

    def select(self, timeout: float | None = None
               ) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            self._turns += 1
            if self._turns & 15:
                return []
        self._turns = 0
        return self._real.select(timeout)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualSelector(BusyLoopSelector):
    """The selector of ``vtloop.VirtualTimeLoop`` (the virtual-time loop, named ``loop`` here):
    it polls lazily while callbacks are ready, like an apartment loop's, and never blocks while
    a timer is pending: it moves the clock instead. With nothing scheduled it waits for an
    outside event, or raises the loop's deadlock (``vtloop``'s docstring gives the rule)."""

    def __init__(self, real: selectors.BaseSelector, loop: Any) -> None:
        super().__init__(real)
        self._loop = loop
        #: files registered besides the loop's self-pipe (registered before this wrapper)
        self._others = 0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        self._others += 1
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        self._others -= 1
        return key

    def select(self, timeout: float | None = None
               ) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        scheduled = loop._scheduled
        if timeout is not None and timeout > 0 and scheduled[0]._when == math.inf:
            timeout = None  # only timers that never fire (``anyio.sleep_forever``)
        if timeout is None:
            return self._idle()
        if timeout <= 0:
            return super().select(timeout)  # callbacks are ready: poll now and then
        self._turns = 0
        if self._others or getattr(loop, "_signal_handlers", None):
            events = self._real.select(0)  # real I/O or a signal first
            if events:
                return events
        # (a thread's ``call_soon_threadsafe`` puts its callback on the ready queue itself:
        # the self-pipe only wakes a loop that waits, and is read at the next poll)
        # jump to the next timer exactly: ``_clock_resolution`` makes asyncio run it now
        target = scheduled[0]._when
        if target > loop._vtime:
            loop._jumps += 1
            if loop._jumps > loop.jump_limit:
                raise past_jump_limit(loop)
            loop._vtime = target
        return []

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
        raise deadlock_of(loop)


def deadlock_of(loop: Any) -> BaseException:
    """The exception a deadlocked virtual-time loop raises: made once, by its
    ``explain_deadlock`` (a deadlock during the cleanup raises the same again)."""
    if loop._deadlocked is None:
        explain = type(loop).explain_deadlock
        plain = "deadlock: nothing can ever run again on the virtual-time loop"
        try:
            loop._deadlocked = explain(loop) if explain is not None else RuntimeError(plain)
        except Exception as exc:  # no report, but still no hang
            loop._deadlocked = RuntimeError(f"{plain} (no report: {exc!r})")
    deadlocked: BaseException = loop._deadlocked
    return deadlocked


class JumpLimitExceeded(RuntimeError):
    """The virtual clock was to jump once more than its loop's ``jump_limit``: something keeps
    scheduling timers for ever (a livelock: a COM retry that never ends, a polling loop), or
    the program needs more steps of time than the limit gives."""


def past_jump_limit(loop: Any) -> BaseException:
    """The exception a virtual-time loop raises when its clock would pass its ``jump_limit``;
    kept as the loop's ``_deadlocked``, so that its cleanup raises the same again and it is not
    reused (``rewind``)."""
    if loop._deadlocked is None:
        loop._deadlocked = JumpLimitExceeded(
            f"the virtual clock jumped {loop.jump_limit:,.0f} times (the loop's jump_limit; "
            f"explore, replay and shrink give each run comsim.testing._runs.RUN_JUMP_LIMIT), "
            f"reaching {loop._vtime:g} s: something keeps scheduling timers for ever (a "
            f"livelock: a rejected call retried for ever (R16), a loop that polls), or the "
            f"program needs more steps of time than that")
    exc: BaseException = loop._deadlocked
    return exc


class Handle(asyncio.Handle):
    """asyncio's ``Handle``, made without asking the loop for its debug mode (the loop makes
    these only when it is not in debug mode, so there is no source traceback to take)."""

    __slots__ = ()

    def __init__(self, callback: Callable[..., Any], args: tuple[Any, ...],
                 loop: asyncio.AbstractEventLoop, context: contextvars.Context | None) -> None:
        this: Any = self
        this._context = context if context is not None else contextvars.copy_context()
        this._loop = loop
        this._callback = callback
        this._args = args
        this._cancelled = False
        this._repr = None
        this._source_traceback = None


class TimerHandle(asyncio.TimerHandle):
    """asyncio's ``TimerHandle`` with a one-frame ``cancel``. The virtual-time loop makes these
    with ``new_handle`` and sets their fields itself (``call_at``)."""

    __slots__ = ()

    def cancel(self) -> None:
        """asyncio's ``TimerHandle.cancel``, its loop's ``_timer_handle_cancelled`` and
        ``Handle.cancel``, in one frame."""
        this: Any = self
        if this._cancelled:
            return
        loop = this._loop
        if this._scheduled:
            loop._timer_cancelled_count += 1
        this._cancelled = True
        if loop.get_debug():
            this._repr = repr(self)
        this._callback = None
        this._args = None


def callback_failed(loop: asyncio.AbstractEventLoop, handle: Any, exc: BaseException) -> None:
    """What ``Handle._run`` reports when a callback raises (a loop that runs its handles'
    callbacks itself calls this)."""
    cb = format_helpers._format_callback_source(handle._callback, handle._args)
    context: dict[str, Any] = {"message": f"Exception in callback {cb}",
                               "exception": exc, "handle": handle}
    if handle._source_traceback:
        context["source_traceback"] = handle._source_traceback
    loop.call_exception_handler(context)


#: a ``Handle`` or ``TimerHandle`` not yet initialised (``object.__new__``: no Python frame);
#: a loop that makes one sets each of its fields, as ``__init__`` does
new_handle: Callable[[type[Any]], Any] = object.__new__


class ApartmentLoop(asyncio.SelectorEventLoop):
    """A threaded apartment's loop: a selector loop that polls lazily while busy
    (``BusyLoopSelector``) and reads its wake-up pipe once per wake-up.

    asyncio reads the pipe until a read would block: a second system call, and an exception
    raised and caught, on every wake-up, and an apartment is woken once per message. One read
    takes up to 4096 wake-up bytes; any left over make the pipe ready again at the next poll,
    which reads them then.
    """

    def __init__(self) -> None:
        super().__init__(BusyLoopSelector(selectors.DefaultSelector()))

    def _read_from_self(self) -> None:
        try:
            data = self._ssock.recv(4096)  # type: ignore[attr-defined]
        except (InterruptedError, BlockingIOError):
            return
        if data:
            self._process_self_data(data)  # type: ignore[attr-defined]

    def waker(self, callback: Callable[[], Any], context: contextvars.Context
              ) -> Callable[[], object]:
        """A function that has ``callback`` run on this loop, callable from any thread: what
        ``call_soon_threadsafe(callback, context=context)`` does, with one handle made here
        instead of one per call. Each call runs ``callback`` once more."""
        ready = getattr(self, "_ready", None)  # asyncio's queue of ready callbacks
        send = getattr(getattr(self, "_csock", None), "send", None)  # the wake-up pipe
        if ready is None or send is None:  # pragma: no cover - an asyncio without them
            return functools.partial(self.call_soon_threadsafe, callback, context=context)
        handle = asyncio.Handle(callback, (), self, context)

        def wake() -> None:
            ready.append(handle)  # as call_soon_threadsafe does: a deque takes it atomically
            try:
                send(b"\0")
            except OSError:  # the pipe is full (the loop wakes all the same), or it has closed
                pass

        return wake


#: the task running on a loop, or None: ``asyncio.current_task(loop)``. On Python 3.11 that is
#: a Python function reading a dict, which is read here directly; from 3.12 it is C code.
_current_task: Any = asyncio.current_task
if sys.version_info < (3, 12) and isinstance(getattr(asyncio.tasks, "_current_tasks", None),
                                             dict):
    _current_task = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
#: the loop running in this thread, or None (C: ``asyncio.get_running_loop`` without raising)
_running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio.events._get_running_loop
#: ``asyncio.current_task(loop)`` (``loop`` given), in C on every version
current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = _current_task


def resume(fut: asyncio.Future[Any], value: Any) -> None:
    """Set ``fut``'s result unless it is already done, and let the task that awaits it go on
    in this turn of the loop when that is safe.

    asyncio's ``set_result`` schedules the waiting task's next step for the loop's next turn.
    Called from a plain loop callback (no task is running on this loop: a message being taken
    in, a timer), the one task that awaits ``fut`` takes that step here and now instead, as
    Python 3.12's eager tasks do for a task's first step: a hand-off into an apartment costs
    one loop turn, not two. Everything else is plain ``set_result``: inside a running task,
    with no waiter or several, or a waiter that is not a task.
    """
    loop = fut.get_loop()
    if loop is not _running_loop():  # a waiter on another thread's loop (NA code there, R5)
        call_in_loop(loop, settle, fut, value)  # is woken on that thread, by its loop
        return
    cbs = getattr(fut, "_callbacks", None)  # (callback, context) pairs; None when empty
    if cbs is None or len(cbs) != 1 or _current_task(loop) is not None:
        if not fut.done():
            fut.set_result(value)
        return
    step, ctx = cbs[0]
    fut.remove_done_callback(step)
    fut.set_result(value)  # a future with a callback is not done yet
    try:
        ctx.run(step, fut)
    except RuntimeError:  # its context is entered already, or a task runs after all
        loop.call_soon(step, fut, context=ctx)


def all_tasks_blocked(loop: asyncio.AbstractEventLoop) -> bool:
    """Nothing is ready to run on ``loop`` (every task waits)."""
    return not loop._ready  # type: ignore[attr-defined]
