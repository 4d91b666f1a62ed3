"""comsim's testing toolkit: virtual time, trace capture, seed exploration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from ._explore import Exploration, explore
from ._loop import VirtualTimeLoop, wait_all_tasks_blocked
from ._trace import Trace, capture_trace

T = TypeVar("T")


def run(async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``anyio.run`` on the asyncio backend with comsim's ``VirtualTimeLoop``: everything in
    ``async_fn``, the caller's code too, lives in virtual time."""
    return anyio.run(async_fn, *args, backend="asyncio",
                     backend_options={"loop_factory": VirtualTimeLoop})


__all__ = [
    "Exploration",
    "Trace",
    "VirtualTimeLoop",
    "capture_trace",
    "explore",
    "run",
    "wait_all_tasks_blocked",
]
