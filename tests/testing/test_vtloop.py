"""The virtual-time loop's clock: sleeping any virtual length, up to ``float("inf")`` excluded,
never spins and returns (API.md, "Deadlocks fail, they do not hang").

The bug: the loop ran the timers due before ``time() + 1e-9``; above ~1e7 seconds that sum
rounds back to ``time()``, so the timer the clock had jumped to never ran, and the loop spun.
Each test runs under a wall-clock watchdog that stops the loop (failing the test) instead of
hanging.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import comsim
import comsim.testing

WALL_LIMIT = 5.0


def run_guarded(main: Callable[[], Awaitable[Any]]) -> Any:
    """``comsim.testing.run(main)`` within a second of wall time; a watchdog thread stops the
    loop after ``WALL_LIMIT`` s (a spinning loop never returns on its own)."""
    loops: list[asyncio.AbstractEventLoop] = []
    finished = threading.Event()
    fired = threading.Event()

    async def wrapper() -> Any:
        loops.append(asyncio.get_running_loop())
        return await main()

    def watchdog() -> None:
        if not finished.wait(WALL_LIMIT) and loops:
            fired.set()
            loops[0].call_soon_threadsafe(loops[0].stop)

    threading.Thread(target=watchdog, daemon=True).start()
    start = time.monotonic()
    try:
        result = comsim.testing.run(wrapper)
    except BaseException as exc:
        if fired.is_set():
            pytest.fail(f"no end after {WALL_LIMIT} s of wall time (virtual time "
                        f"{loops[0].time()!r}): the loop spins")
        raise exc
    finally:
        finished.set()
    assert time.monotonic() - start < 10.0  # virtual time: no real sleep of 1e6 s
    return result


def test_sleep_2e7_returns() -> None:
    async def main() -> float:
        await anyio.sleep(2e7)
        return asyncio.get_running_loop().time()

    assert run_guarded(main) == 2e7


def test_two_sleeps_of_1e7_in_a_row_return() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = []
        for _ in range(2):
            await anyio.sleep(1e7)
            seen.append(loop.time())
        return seen

    assert run_guarded(main) == [1e7, 2e7]


@pytest.mark.parametrize("length", [1e-9, 0.5, 1e9, 1e15, 1e300, sys.float_info.max / 2])
def test_any_finite_sleep_returns(length: float) -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        await anyio.sleep(length)
        first = loop.time()
        await anyio.sleep(length)  # once more, from there
        return first, loop.time()

    first, second = run_guarded(main)
    assert first == length
    assert second == length + length


def test_the_largest_float_sleep_returns() -> None:
    async def main() -> float:
        await anyio.sleep(sys.float_info.max)
        return asyncio.get_running_loop().time()

    assert run_guarded(main) == sys.float_info.max


def test_a_sleep_past_the_clocks_end_returns_at_its_end() -> None:
    # max + max overflows to inf, where a timer never fires: before, a false Deadlock
    async def main() -> float:
        await anyio.sleep(sys.float_info.max)
        await asyncio.sleep(sys.float_info.max)
        return asyncio.get_running_loop().time()

    assert run_guarded(main) == sys.float_info.max


def test_a_short_sleep_after_a_long_one_returns() -> None:
    # at 2e7 seconds, 1e-9 more is the same float: the timer is due at once
    async def main() -> float:
        await anyio.sleep(2e7)
        await anyio.sleep(1e-9)
        await anyio.sleep(1.0)
        return asyncio.get_running_loop().time()

    assert run_guarded(main) == 2e7 + 1.0


def test_a_time_out_far_in_virtual_time_fires() -> None:
    async def main() -> tuple[bool, float]:
        with anyio.move_on_after(3e7) as scope:
            await anyio.Event().wait()
        return scope.cancelled_caught, asyncio.get_running_loop().time()

    assert run_guarded(main) == (True, 3e7)


def test_the_deterministic_runtime_sleeps_long_too() -> None:
    # R2: an anyio.sleep in an STA unit blocks the STA, for 2e7 virtual seconds here
    async def main() -> float:
        async with comsim.Runtime(deterministic=True, seed=0) as rt:
            sta = await rt.create_sta("A")
            await sta.run(anyio.sleep, 2e7)
        return asyncio.get_running_loop().time()

    assert run_guarded(main) == 2e7
