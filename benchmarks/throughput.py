"""Throughput and load: the deterministic runtime's call rate, a 10,000-call scenario with
cancels (and its replay), and 10,000 asynchronous calls in flight across 4 apartments.

    python benchmarks/throughput.py [--calls 10000]

Baseline, measured in the same run: one asyncio queue hop and a future on one loop (what a
call on a single loop must at least cost).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio

import comsim
import comsim.testing
from comsim import hresult as hr


class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Work(self, ms: int) -> int: ...


class Calc(comsim.CoClass, ICalc):
    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Work(self, ms: int) -> int:
        await anyio.sleep(ms / 1000)
        return ms


AsyncICalc = comsim.async_interface(ICalc)


def baseline_one_loop(n: int) -> float:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[tuple[asyncio.Future[int], int, int]] = asyncio.Queue()

        async def server() -> None:
            while True:
                fut, a, b = await q.get()
                fut.set_result(a + b)

        task = loop.create_task(server())
        t0 = time.perf_counter()
        for _ in range(n):
            fut: asyncio.Future[int] = loop.create_future()
            q.put_nowait((fut, 1, 2))
            await fut
        dt = time.perf_counter() - t0
        task.cancel()
        return n / dt

    return asyncio.run(main())


def deterministic_rate(n: int) -> float:
    async def main() -> float:
        async with comsim.Runtime(deterministic=True, seed=1) as rt:
            a, b = await rt.create_sta("a"), await rt.create_sta("b")

            async def serve() -> Any:
                return comsim.marshal_interface(Calc(), ICalc)

            stream = await b.run(serve)

            async def client() -> float:
                p = comsim.unmarshal_interface(stream)
                t0 = time.perf_counter()
                for _ in range(n):
                    await p.Add(1, 2)
                return n / (time.perf_counter() - t0)

            return await a.run(client)

    return comsim.testing.run(main)


async def load(rt: comsim.Runtime, n: int, seed: int) -> dict[str, int]:
    """n async calls in flight across 3 STAs and the MTA, a third of them cancelled."""
    rng = random.Random(seed)
    stas = [await rt.create_sta(f"s{i}") for i in range(3)]
    apts = [*stas, rt.mta]

    async def serve() -> Any:
        return comsim.marshal_interface(Calc(), ICalc, flags=comsim.MSHLFLAGS.TABLESTRONG)

    streams = [await apt.run(serve) for apt in apts]
    plan = []
    for _ in range(n):
        cli = rng.randrange(4)
        srv = (cli + 1 + rng.randrange(3)) % 4  # always another apartment: a proxy
        plan.append((cli, srv, rng.random() < 0.33, rng.randrange(3)))
    outcomes: dict[str, int] = {}

    async def client(ci: int) -> None:
        mine = [(s, c, ms) for (cli, s, c, ms) in plan if cli == ci]
        proxies = [comsim.unmarshal_interface(st) for st in streams]
        calls = []
        for s, cancel, ms in mine:
            f = proxies[s].QueryInterface(comsim.ICallFactory)
            call: Any = f.CreateCall(AsyncICalc)
            call.Begin_Work(ms)
            calls.append((call, cancel))
        for call, cancel in calls:
            if cancel:
                await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(0)
        for call, _cancel in calls:
            try:
                await call.Finish_Work()
                key = "completed"
            except comsim.COMError as exc:
                key = hr.name(exc.hresult)
            outcomes[key] = outcomes.get(key, 0) + 1
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            assert cancel.TestCancel() == hr.RPC_E_CALL_COMPLETE  # idle again after Finish_
            cancel.Release()

    async with anyio.create_task_group() as tg:
        for i, apt in enumerate(apts):
            tg.start_soon(apt.run, client, i)
    return outcomes


def deterministic_scenario(n: int, seed: int) -> tuple[float, str, dict[str, int]]:
    result: dict[str, Any] = {}

    async def main() -> None:
        with comsim.testing.capture_trace() as events:
            async with comsim.Runtime(deterministic=True, seed=seed) as rt:
                result["outcomes"] = await load(rt, n, seed)
        digest = hashlib.sha256(repr([sorted(e.items()) for e in events]).encode()).hexdigest()
        result["digest"] = digest[:16]

    t0 = time.perf_counter()
    comsim.testing.run(main)
    return time.perf_counter() - t0, result["digest"], result["outcomes"]


def threaded_load(n: int, seed: int) -> tuple[float, dict[str, int], int]:
    async def main() -> dict[str, int]:
        async with comsim.Runtime() as rt:
            return await load(rt, n, seed)

    t0 = time.perf_counter()
    outcomes = asyncio.run(main())
    dt = time.perf_counter() - t0
    left = sum(1 for t in threading.enumerate() if t.name.startswith("comsim-"))
    return dt, outcomes, left


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--rate-calls", type=int, default=20_000)
    args = ap.parse_args(argv)
    base = baseline_one_loop(args.rate_calls)
    rate = deterministic_rate(args.rate_calls)
    print(f"deterministic runtime, sync STA->STA calls: {rate:10,.0f} calls/s   "
          f"(raw one-loop queue hop: {base:10,.0f}/s, ratio {base / rate:.1f}x)")
    t1, d1, o1 = deterministic_scenario(args.calls, seed=7)
    t2, d2, o2 = deterministic_scenario(args.calls, seed=7)
    print(f"deterministic {args.calls:,}-call scenario with cancels: {t1:.2f} s, replay "
          f"{t2:.2f} s, same trace: {d1 == d2} ({d1}); outcomes {o1}")
    assert o1 == o2 and d1 == d2
    dt, outcomes, left = threaded_load(args.calls, seed=7)
    print(f"threaded: {args.calls:,} async calls in flight across 4 apartments with cancels: "
          f"{dt:.2f} s; outcomes {outcomes}; comsim threads left: {left}")
    assert sum(outcomes.values()) == args.calls and left == 0


if __name__ == "__main__":
    main()
