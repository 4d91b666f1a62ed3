"""The two future helpers the runtime shares."""

from __future__ import annotations

import asyncio
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
