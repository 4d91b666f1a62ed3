"""The four figures of the runtime's transport seam, each beside its raw-Python baseline measured
in the same run.

    python benchmarks/seam.py [--rounds 8] [--json]

1. deterministic STA->STA synchronous call / one loop: an ``asyncio.Queue`` hop to a server
   task and a future back (goal <= 1.5x);
2. threaded STA->STA synchronous call, p50 / two bare asyncio loops on two threads, unpinned
   and with both on one CPU (goal <= 1.25x);
3. throughput of 16 concurrent callers in the MTA calling one STA / two raw loops whose server
   runs each call as a task (goal >= 1.5x: comsim's figure is calls per second over the
   baseline's);
4. memory per in-flight asynchronous call (begun, its server method waiting) / a raw task plus
   a future (goal <= 1.3x), measured with ``tracemalloc``.

Ratios are medians over rounds that alternate comsim and the baseline, so that a shared
machine's slow and fast phases hit both alike. Only public API is used, so the same file
measures any version of comsim (``PYTHONPATH=<an older checkout>``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import comsim
import comsim.testing
from benchmarks.latency import (
    ICalc,
    baseline_one_loop,
    baseline_two_loops,
    comsim_deterministic,
    comsim_threaded,
)

CALLERS = 16


class IWait(comsim.Interface):
    async def Hold(self, gate: Any) -> int: ...


class Holder(comsim.CoClass, IWait):
    async def Hold(self, gate: Any) -> int:
        await gate.Wait(0, comsim.INFINITE)
        return 1


class Adder(comsim.CoClass, ICalc):
    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Block(self, gate: Any) -> int:
        return 0


def _p50(xs: list[float]) -> float:
    return statistics.median(xs)


# --------------------------------------------------------------------------- 3. throughput
async def comsim_throughput(calls: int) -> float:
    """Calls per second: CALLERS tasks in one MTA unit, each making calls to one STA."""
    async with comsim.Runtime() as rt:
        sta = await rt.create_sta("srv")

        async def make() -> Any:
            return comsim.marshal_interface(Adder(), ICalc,
                                            flags=comsim.MSHLFLAGS.TABLESTRONG)

        stream = await sta.run(make)

        async def callers() -> float:
            proxy = comsim.unmarshal_interface(stream)
            each = calls // CALLERS

            async def one() -> None:
                for _ in range(each):
                    await proxy.Add(1, 2)

            await one()  # warm
            t0 = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(CALLERS)))
            return each * CALLERS / (time.perf_counter() - t0)

        return float(await rt.mta.run(callers))


def raw_throughput(calls: int) -> float:
    """Calls per second: two plain loops on two threads; the server runs each call as a task."""
    server_loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(server_loop)
        server_loop.call_soon(ready.set)
        server_loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait()

    async def main() -> float:
        loop = asyncio.get_running_loop()

        async def method(fut: asyncio.Future[int], a: int, b: int) -> None:
            loop.call_soon_threadsafe(fut.set_result, a + b)

        def handle(fut: asyncio.Future[int], a: int, b: int) -> None:
            # a bare task per call (the caller's future keeps the call's outcome): no set of
            # strong references, so the baseline pays nothing comsim's design does not
            server_loop.create_task(method(fut, a, b))  # noqa: RUF006

        async def call() -> int:
            fut = loop.create_future()
            server_loop.call_soon_threadsafe(handle, fut, 1, 2)
            return await fut

        each = calls // CALLERS

        async def one() -> None:
            for _ in range(each):
                await call()

        await one()
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(CALLERS)))
        return each * CALLERS / (time.perf_counter() - t0)

    try:
        return asyncio.run(main())
    finally:
        server_loop.call_soon_threadsafe(server_loop.stop)
        thread.join()
        server_loop.close()


# --------------------------------------------------------------------------- 4. memory
async def comsim_memory_per_call(n: int) -> float:
    """Bytes per asynchronous call in flight: begun from an STA, its MTA server method waiting."""
    async with comsim.Runtime() as rt:
        client = await rt.create_sta("client")
        gate = comsim.ManualResetEvent()

        async def make() -> Any:
            return comsim.marshal_interface(Holder(), IWait, flags=comsim.MSHLFLAGS.TABLESTRONG)

        stream = await rt.mta.run(make)
        async_iface = comsim.async_interface(IWait)

        async def begin_all(count: int) -> list[Any]:
            factory = comsim.unmarshal_interface(stream).QueryInterface(comsim.ICallFactory)
            out = []
            for _ in range(count):
                call = factory.CreateCall(async_iface)
                call.Begin_Hold(gate)
                out.append(call)
            return out

        async def settle_all(calls: list[Any]) -> None:
            for call in calls:
                await call.Finish_Hold()

        warm = await client.run(begin_all, 50)  # classes, caches and server tasks made once
        gate.Signal()
        await client.run(settle_all, warm)
        gate.Reset()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        calls = await client.run(begin_all, n)
        await _all_dispatched(rt)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        gate.Signal()
        await client.run(settle_all, calls)
        return (after - before) / n


async def _all_dispatched(rt: comsim.Runtime) -> None:
    """Let every request reach its server method (it waits on the gate then)."""
    for _ in range(200):
        await asyncio.sleep(0.005)


def raw_memory_per_call(n: int) -> float:
    """Bytes per raw call in flight: a server task awaiting a gate, and the caller's future."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        gate = asyncio.Event()

        async def method(fut: asyncio.Future[int]) -> None:
            await gate.wait()
            fut.set_result(1)

        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        futs = []
        tasks = []
        for _ in range(n):
            fut = loop.create_future()
            futs.append(fut)
            tasks.append(loop.create_task(method(fut)))
        await asyncio.sleep(0)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        gate.set()
        await asyncio.gather(*futs)
        return (after - before) / n

    return asyncio.run(main())


# --------------------------------------------------------------------------- the run
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8, help="alternating rounds per figure")
    ap.add_argument("--n", type=int, default=1500, help="calls per latency block")
    ap.add_argument("--calls", type=int, default=8000, help="calls per throughput block")
    ap.add_argument("--inflight", type=int, default=2000, help="calls in flight for memory")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows: dict[str, list[float]] = {"det": [], "thr": [], "thr_1cpu": [], "tput": [], "mem": []}
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    for r in range(args.rounds):
        first_ours = r % 2 == 0

        def pair(ours: Any, base: Any, first_ours: bool = first_ours) -> tuple[Any, Any]:
            if first_ours:
                a = ours()
                return a, base()
            b = base()
            return ours(), b

        ours, base = pair(lambda: comsim_deterministic(args.n),
                          lambda: asyncio.run(baseline_one_loop(args.n)))
        rows["det"].append(_p50(ours) / _p50(base))
        ours, base = pair(lambda: asyncio.run(comsim_threaded(args.n, "sta1", "sta2"))[0],
                          lambda: baseline_two_loops(args.n))
        rows["thr"].append(_p50(ours) / _p50(base))
        if cpu is not None:
            ours, base = pair(
                lambda: asyncio.run(comsim_threaded(args.n, "sta1", "sta2", cpu=cpu))[0],
                lambda: baseline_two_loops(args.n, (cpu, cpu)))
            rows["thr_1cpu"].append(_p50(ours) / _p50(base))
        ours, base = pair(lambda: asyncio.run(comsim_throughput(args.calls)),
                          lambda: raw_throughput(args.calls))
        rows["tput"].append(ours / base)
        ours, base = pair(lambda: asyncio.run(comsim_memory_per_call(args.inflight)),
                          lambda: raw_memory_per_call(args.inflight))
        rows["mem"].append(ours / base)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {v[-1]:.2f}" for k, v in rows.items() if v), flush=True)
    result = {k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
              for k, v in rows.items() if v}
    labels = {
        "det": "deterministic STA->STA / one-loop hop (goal <= 1.5x)",
        "thr": "threaded STA->STA p50 / two bare loops, unpinned (goal <= 1.25x)",
        "thr_1cpu": "threaded STA->STA p50 / two bare loops, one CPU (goal <= 1.25x)",
        "tput": "16 MTA callers -> one STA, calls/s / raw loops (goal >= 1.5x)",
        "mem": "memory per in-flight async call / raw task + future (goal <= 1.3x)",
    }
    print()
    for k, v in result.items():
        print(f"{labels[k]:<72} {v['median']:.2f}x  ({v['min']:.2f}-{v['max']:.2f})")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
