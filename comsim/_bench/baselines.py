"""Sampling, statistics, and the raw-Python baselines that comsim's calls are measured beside.

- two loops: two plain asyncio loops on two threads handing a request and a reply over with
  ``call_soon_threadsafe`` (what one cross-apartment round trip must at least cost);
- one loop: an ``asyncio.Queue`` hop and a future on one loop (the deterministic runtime's
  floor);
- direct await: a plain object's method awaited directly (``Plain``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

#: blocks of comsim's calls and of its baseline's per row, in alternating order
ROUNDS = 12

#: where a row's two threads run: (the caller's CPU, the server's CPU); None: anywhere
Placement = tuple[int | None, int | None]

#: called after each round of a row (progress)
Tick = Callable[[], None]


def no_tick() -> None:
    """The default ``Tick``: nothing to report."""


async def sample(fn: Callable[[], Awaitable[Any]], n: int, warm: int = 200) -> list[float]:
    """``n`` timings of ``await fn()`` in seconds, after ``warm`` untimed calls, GC off."""
    for _ in range(warm):
        await fn()
    out = []
    gc.disable()
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await fn()
            out.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return out


def stats(xs: list[float]) -> dict[str, float]:
    """p50, p99 and mean of ``xs`` (seconds), in microseconds."""
    xs = sorted(xs)
    return {"p50": xs[len(xs) // 2] * 1e6,
            "p99": xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1e6,
            "mean": statistics.fmean(xs) * 1e6}


class Samples(list[float]):
    """Call times in seconds, and the p50 of each round's block (for the per-round ratio)."""

    def __init__(self) -> None:
        super().__init__()
        self.rounds: list[float] = []

    def add_block(self, xs: list[float]) -> None:
        self.extend(xs)
        self.rounds.append(stats(xs)["p50"])


def round_ratios(ours: list[float], base: list[float]) -> list[float]:
    """Each round's p50 ratio, where both sides were measured in the same rounds."""
    a, b = getattr(ours, "rounds", []), getattr(base, "rounds", [])
    if a and len(a) == len(b):
        return [x / y for x, y in zip(a, b, strict=True)]
    return []


def ratio(ours: list[float], base: list[float]) -> float:
    """The median of per-round p50 ratios where both sides have rounds, else pooled p50s."""
    per_round = round_ratios(ours, base)
    if per_round:
        return statistics.median(per_round)
    return stats(ours)["p50"] / stats(base)["p50"]


class Plain:
    """The direct-await baseline's object."""

    async def Add(self, a: int, b: int) -> int:
        return a + b


def pin(cpu: int | None) -> None:
    """Keep the calling thread on ``cpu`` (Linux; None or elsewhere: no change)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (``[0]`` where the OS does not say)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]


def baseline_two_loops(n: int, cpus: Placement = (None, None)) -> list[float]:
    """Two plain asyncio loops on two threads, a request and a reply handed over with
    ``call_soon_threadsafe``; ``cpus`` pins the caller's and the server's thread."""
    server = asyncio.new_event_loop()

    def serve() -> None:
        pin(cpus[1])
        server.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    result: list[float] = []

    async def main() -> None:
        pin(cpus[0])
        loop = asyncio.get_running_loop()

        def handle(fut: asyncio.Future[int], a: int, b: int) -> None:
            loop.call_soon_threadsafe(fut.set_result, a + b)

        async def call() -> int:
            fut: asyncio.Future[int] = loop.create_future()
            server.call_soon_threadsafe(handle, fut, 1, 2)
            return await fut

        result.extend(await sample(call, n))

    client = threading.Thread(target=lambda: asyncio.run(main()))
    client.start()
    client.join()
    server.call_soon_threadsafe(server.stop)
    t.join()
    server.close()
    return result


async def baseline_one_loop(n: int) -> list[float]:
    """An ``asyncio.Queue`` hop to a server task and a future back, on the running loop."""
    q: asyncio.Queue[tuple[asyncio.Future[int], int, int]] = asyncio.Queue()

    async def server() -> None:
        while True:
            fut, a, b = await q.get()
            fut.set_result(a + b)

    task = asyncio.get_running_loop().create_task(server())
    loop = asyncio.get_running_loop()

    async def call() -> int:
        fut: asyncio.Future[int] = loop.create_future()
        q.put_nowait((fut, 1, 2))
        return await fut

    try:
        return await sample(call, n)
    finally:
        task.cancel()
