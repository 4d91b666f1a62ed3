"""``wait_all_tasks_blocked``, and the virtual-time loop the deterministic runtime runs on."""

from __future__ import annotations

import asyncio

from .._runtime.vtloop import VirtualTimeLoop, all_tasks_blocked

__all__ = ["VirtualTimeLoop", "wait_all_tasks_blocked"]


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
