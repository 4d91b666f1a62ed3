"""``run`` (a program in virtual time), ``wait_all_tasks_blocked``, and the virtual-time loop
the deterministic runtime runs on."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from .._runtime.loop import all_tasks_blocked
from .._runtime.vtloop import VirtualTimeLoop

__all__ = ["VirtualTimeLoop", "run", "wait_all_tasks_blocked"]

T = TypeVar("T")


def run(async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``anyio.run`` on the asyncio backend with comsim's ``VirtualTimeLoop``: everything in
    ``async_fn``, the caller's code too, lives in virtual time.

    Once ``async_fn`` has ended, the tasks it left are cancelled and given
    ``VirtualTimeLoop.rewind_grace`` virtual seconds to end; one still running then swallows
    its cancels (a task an apartment's teardown left behind, R18, say): it is closed where it
    waits, with a ``RuntimeWarning``, instead of hanging the program's end as it would
    ``asyncio.run``'s.

    Raises:
        comsim.testing.Deadlock: nothing can ever run again (no callback ready, no timer, no
            message in flight) while ``async_fn`` is unfinished; its message and ``waits``
            say who waits on what. The remaining tasks are cancelled and the loop closed.
        Whatever ``async_fn`` raises.
    """

    async def program() -> T:
        try:
            return await async_fn(*args)
        finally:
            await _end_the_rest()

    return anyio.run(program, backend="asyncio",
                     backend_options={"loop_factory": VirtualTimeLoop})


async def _end_the_rest() -> None:
    """Cancel the tasks a program left, wait for them in virtual time, close the stubborn."""
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    if not rest:
        return
    for t in rest:
        t.cancel()
    await asyncio.wait(rest, timeout=VirtualTimeLoop.rewind_grace)
    for t in rest:
        if not t.done():
            warnings.warn(f"comsim.testing.run: {t!r} ignores its cancellation; it is closed "
                          "where it waits", RuntimeWarning, stacklevel=2)
            with contextlib.suppress(BaseException):
                t.get_coro().close()
            t.cancel()  # its next step raises at once: the coroutine has ended
            t.add_done_callback(_retrieved)


def _retrieved(task: asyncio.Task[Any]) -> None:
    """A closed task's end (an error of a closed coroutine) was reported: not again."""
    if not task.cancelled():
        task.exception()




async def wait_all_tasks_blocked() -> None:
    """Return once every other task on the virtual-time loop is blocked (waiting for a future,
    an event or a timer) and no message is pending: trio's helper of the same name, for
    comsim's deterministic runtime. The clock does not move.

    Raises:
        RuntimeError: not running on a ``VirtualTimeLoop`` (threads cannot be observed so).
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        raise RuntimeError("wait_all_tasks_blocked needs comsim's VirtualTimeLoop "
                           "(comsim.testing.run, or the deterministic runtime's tests)")
    while True:
        await asyncio.sleep(0)
        if all_tasks_blocked(loop):
            return
