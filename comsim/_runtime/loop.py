"""The threaded runtime's apartment loops: lazy polls while busy, one read per wake-up, and a
wake-up that makes no handle per message; ``resume``, a hand-off that costs one loop turn; and
``Handle`` and ``TimerHandle``, made without asking the loop for its debug mode.

With ``vtloop``, this is one of the two modules that touch asyncio's private internals (the
loop's self-pipe, a future's callbacks, 3.11's current-task dict); each use falls back to the
public path where the internal is missing.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import selectors
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["ApartmentLoop", "BusyLoopSelector", "Handle", "TimerHandle", "resume"]


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
    """asyncio's ``TimerHandle``, made as ``Handle`` is."""

    __slots__ = ()

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...],
                 loop: asyncio.AbstractEventLoop, context: contextvars.Context | None) -> None:
        this: Any = self
        this._context = context if context is not None else contextvars.copy_context()
        this._loop = loop
        this._callback = callback
        this._args = args
        this._cancelled = False
        this._repr = None
        this._source_traceback = None
        this._when = when
        this._scheduled = False


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
    cbs = getattr(fut, "_callbacks", None)  # (callback, context) pairs; None when empty
    if cbs is None or len(cbs) != 1 or _current_task(fut.get_loop()) is not None:
        if not fut.done():
            fut.set_result(value)
        return
    step, ctx = cbs[0]
    fut.remove_done_callback(step)
    fut.set_result(value)  # a future with a callback is not done yet
    try:
        ctx.run(step, fut)
    except RuntimeError:  # its context is entered already, or a task runs after all
        fut.get_loop().call_soon(step, fut, context=ctx)
