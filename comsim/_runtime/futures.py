"""Future and loop helpers the runtime shares (public asyncio only; ``loop.resume`` is the one
that needs asyncio's internals)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any


def settle(fut: asyncio.Future[Any], value: Any) -> None:
    """Set ``fut``'s result unless it is already done (a time-out or a cancel came first)."""
    if not fut.done():
        fut.set_result(value)


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
