"""``run`` (a program in virtual time), ``wait_all_tasks_blocked``, and the virtual-time loop
the deterministic runtime runs on."""

from __future__ import annotations

import asyncio
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

    Raises:
        comsim.testing.Deadlock: nothing can ever run again (no callback ready, no timer, no
            message in flight) while ``async_fn`` is unfinished; its message and ``waits``
            say who waits on what. The remaining tasks are cancelled and the loop closed.
        Whatever ``async_fn`` raises.
    """
    return anyio.run(async_fn, *args, backend="asyncio",
                     backend_options={"loop_factory": VirtualTimeLoop})




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
