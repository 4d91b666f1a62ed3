"""Future and loop helpers the runtime shares."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

#: the task running on a loop, or None: ``asyncio.current_task(loop)``. On Python 3.11 that is
#: a Python function reading a dict, which is read here directly; from 3.12 it is C code.
_current_task: Any = asyncio.current_task
if sys.version_info < (3, 12) and isinstance(getattr(asyncio.tasks, "_current_tasks", None),
                                             dict):
    _current_task = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]


def settle(fut: asyncio.Future[Any], value: Any) -> None:
    """Set ``fut``'s result unless it is already done (a time-out or a cancel came first)."""
    if not fut.done():
        fut.set_result(value)


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


async def wait(fut: asyncio.Future[Any], timeout: float | None) -> Any:
    """``fut``'s result, or False once ``timeout`` seconds (None: no limit) have passed."""
    if timeout is None:
        return await fut
    handle = asyncio.get_running_loop().call_later(timeout, settle, fut, False)
    try:
        return await fut
    finally:
        handle.cancel()


def call_in_loop(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    """Run ``fn(*args)`` on ``loop``, from its own thread or any other, in a fresh context (so
    the caller's context variables do not leak); dropped if that loop has closed."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if loop is running:
            loop.call_soon(fn, *args, context=contextvars.Context())
        else:
            loop.call_soon_threadsafe(fn, *args, context=contextvars.Context())
    except RuntimeError:
        pass  # the loop is closed: nobody waits any more
