"""Latency of comsim's calls, each beside a raw-Python baseline measured in the same run.

    python benchmarks/latency.py [--n 6000] [--rounds 12] [--json]

Baselines:
- direct await: a plain object's method awaited directly, no comsim, in blocks that alternate
  with the same-apartment call's inside the same apartment;
- two loops: two plain asyncio loops on two threads handing a request and a reply over with
  ``call_soon_threadsafe`` (what one cross-apartment round trip must at least cost), measured
  in blocks that alternate with comsim's. Where the OS puts the two threads decides much of
  that figure (a wake-up across cores costs far more than one on the same core), so two rows
  fix the placement for both sides alike: "1 cpu", both threads on one CPU (beside
  ``Runtime(cpu=N)``), and "2 cpus", the caller's thread on one CPU and the server's on
  another (Linux only);
- one loop: an ``asyncio.Queue`` hop and a future on one loop (the deterministic runtime's floor).

Figures are p50 and p99 in microseconds over all samples. The ratio is the median, over
``--rounds`` rounds, of comsim's p50 over its baseline's p50 in the same round: each round
measures a block of comsim's calls and a block of the baseline's back to back (in alternating
order), so that a shared machine's slow and fast phases hit both alike.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


import comsim
import comsim.testing

COOP = os.environ.get("POLICY", "interrupt")


class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Block(self, gate: Any) -> int: ...


class Calc(comsim.CoClass, ICalc):
    cancel_policy = COOP
    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Block(self, gate: Any) -> int:
        await gate.Wait(0, comsim.INFINITE)
        return 1


AsyncICalc = comsim.async_interface(ICalc)


async def _sample(fn: Callable[[], Awaitable[Any]], n: int, warm: int = 200) -> list[float]:
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


def _stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"p50": xs[len(xs) // 2] * 1e6, "p99": xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1e6,
            "mean": statistics.fmean(xs) * 1e6}


# ----------------------------------------------------------------------------- baselines
class _Plain:
    async def Add(self, a: int, b: int) -> int:
        return a + b


def _pin(cpu: int | None) -> None:
    """Keep the calling thread on ``cpu`` (Linux; None or elsewhere: no change)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


Placement = tuple[int | None, int | None]  # (the caller's CPU, the server's CPU)


def baseline_two_loops(n: int, cpus: Placement = (None, None)) -> list[float]:
    """Two plain asyncio loops on two threads, a request and a reply handed over with
    ``call_soon_threadsafe``; ``cpus`` pins the caller's and the server's thread."""
    server = asyncio.new_event_loop()

    def serve() -> None:
        _pin(cpus[1])
        server.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    result: list[float] = []

    async def main() -> None:
        _pin(cpus[0])
        loop = asyncio.get_running_loop()

        def handle(fut: asyncio.Future[int], a: int, b: int) -> None:
            loop.call_soon_threadsafe(fut.set_result, a + b)

        async def call() -> int:
            fut: asyncio.Future[int] = loop.create_future()
            server.call_soon_threadsafe(handle, fut, 1, 2)
            return await fut

        result.extend(await _sample(call, n))

    client = threading.Thread(target=lambda: asyncio.run(main()))
    client.start()
    client.join()
    server.call_soon_threadsafe(server.stop)
    t.join()
    server.close()
    return result


async def baseline_one_loop(n: int) -> list[float]:
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
        return await _sample(call, n)
    finally:
        task.cancel()


# ----------------------------------------------------------------------------- comsim
ROUNDS = 12


class Samples(list[float]):
    """Call times in seconds, and the p50 of each round's block (for the per-round ratio)."""

    def __init__(self) -> None:
        super().__init__()
        self.rounds: list[float] = []

    def add_block(self, xs: list[float]) -> None:
        self.extend(xs)
        self.rounds.append(_stats(xs)["p50"])


def _ratio(ours: list[float], base: list[float]) -> float:
    """The median of per-round p50 ratios where both sides have rounds, else pooled p50s."""
    a, b = getattr(ours, "rounds", []), getattr(base, "rounds", [])
    if a and len(a) == len(b):
        return statistics.median(x / y for x, y in zip(a, b, strict=True))
    return _stats(ours)["p50"] / _stats(base)["p50"]


async def _pair(rt: comsim.Runtime, client: comsim.Apartment, server: comsim.Apartment,
                n: int, kind: str, baseline: Placement | None = None
                ) -> tuple[list[float], list[float]]:
    """comsim's samples, and (given the ``baseline`` threads' placement) the two-loop
    baseline's, measured from the caller's thread in blocks that alternate with comsim's
    (ROUNDS each, in alternating order), so that drift of the machine hits both alike."""

    async def make() -> Any:
        return comsim.marshal_interface(Calc(), ICalc)

    stream = await server.run(make)
    state: dict[str, Any] = {}

    async def setup() -> None:
        p = comsim.unmarshal_interface(stream)
        state["proxy"] = p
        f = p.QueryInterface(comsim.ICallFactory)
        state["call"] = f.CreateCall(AsyncICalc)

    await client.run(setup)

    async def block(count: int) -> list[float]:
        p, call = state["proxy"], state["call"]
        if kind == "sync":
            return await _sample(lambda: p.Add(1, 2), count)
        if kind == "async":

            async def once() -> int:
                call.Begin_Add(1, 2)
                return await call.Finish_Add()  # type: ignore[no-any-return]

            return await _sample(once, count)
        if kind == "cancel":
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            gate = comsim.ManualResetEvent()
            out: list[float] = []
            for i in range(count + 50):
                call.Begin_Block(gate)
                t0 = time.perf_counter()
                await cancel.Cancel(0)
                try:
                    await call.Finish_Block()
                except comsim.COMError:
                    pass
                if i >= 50:
                    out.append(time.perf_counter() - t0)
            gate.Signal()
            return out
        raise ValueError(kind)

    if baseline is None:
        return await client.run(block, n), []
    ours, base = Samples(), Samples()
    size = max(20, n // ROUNDS)
    for i in range(ROUNDS):
        if i % 2:
            base.add_block(baseline_two_loops(size, baseline))  # blocks the host: fine
            ours.add_block(await client.run(block, size))
        else:
            ours.add_block(await client.run(block, size))
            base.add_block(baseline_two_loops(size, baseline))
    return ours, base


async def comsim_same_apartment(n: int) -> tuple[list[float], list[float]]:
    """A call on an object in the caller's own apartment (R8: unmarshalled at home it is the
    object itself), and its baseline, a plain object's method awaited directly, in blocks
    that alternate inside the same apartment."""
    async with comsim.Runtime() as rt:
        sta = await rt.create_sta("a")

        async def measure() -> tuple[list[float], list[float]]:
            obj = comsim.unmarshal_interface(comsim.marshal_interface(Calc(), ICalc))
            plain = _Plain()
            ours, base = Samples(), Samples()
            size = max(20, n // ROUNDS)
            for _ in range(ROUNDS):
                ours.add_block(await _sample(lambda: obj.Add(1, 2), size))
                base.add_block(await _sample(lambda: plain.Add(1, 2), size))
            return ours, base

        return await sta.run(measure)


async def comsim_threaded(n: int, client: str, server: str, kind: str = "sync",
                          baseline: Placement | None = None, cpu: int | None = None,
                          cpus: Placement = (None, None)) -> tuple[list[float], list[float]]:
    """``cpu``: ``Runtime(cpu=cpu)``; ``cpus``: pin the client's and the server's apartment
    thread apart (each apartment is one thread; ``Apartment.run`` takes a plain function)."""
    async with comsim.Runtime(cpu=cpu) as rt:
        apts = {"sta1": await rt.create_sta("sta1"), "sta2": await rt.create_sta("sta2"),
                "mta": rt.mta}
        if cpus != (None, None):
            await apts[client].run(_pin, cpus[0])
            await apts[server].run(_pin, cpus[1])
        return await _pair(rt, apts[client], apts[server], n, kind, baseline)


def comsim_deterministic(n: int) -> list[float]:
    out: list[float] = []

    async def main() -> None:
        async with comsim.Runtime(deterministic=True, seed=1) as rt:
            a = await rt.create_sta("a")
            b = await rt.create_sta("b")
            out.extend((await _pair(rt, a, b, n, "sync"))[0])

    comsim.testing.run(main)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global ROUNDS
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=6000, help="calls per row (split over rounds)")
    ap.add_argument("--rounds", type=int, default=ROUNDS,
                    help="alternating blocks of comsim and its two-loop baseline per row")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    n = args.n
    ROUNDS = max(1, args.rounds)
    rows: list[tuple[str, dict[str, float], str, dict[str, float], float]] = []
    one = _stats(asyncio.run(baseline_one_loop(n)))
    same, direct = asyncio.run(comsim_same_apartment(n))
    rows.append(("same apartment", _stats(same), "direct await", _stats(direct),
                 _ratio(same, direct)))
    for label, c, s, kind in (("STA->STA", "sta1", "sta2", "sync"),
                              ("MTA->STA", "mta", "sta1", "sync"),
                              ("STA->MTA", "sta1", "mta", "sync"),
                              ("STA->STA Begin_/Finish_", "sta1", "sta2", "async")):
        ours, base = asyncio.run(comsim_threaded(n, c, s, kind, baseline=(None, None)))
        rows.append((label, _stats(ours), "two loops", _stats(base), _ratio(ours, base)))
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    c0 = allowed[0]
    ours, base = asyncio.run(comsim_threaded(n, "sta1", "sta2", "sync", baseline=(c0, c0),
                                             cpu=c0))
    rows.append(("STA->STA, Runtime(cpu=N)", _stats(ours), "two loops, 1 cpu", _stats(base),
                 _ratio(ours, base)))
    if len(allowed) >= 2:
        placed = (c0, allowed[1])
        ours, base = asyncio.run(comsim_threaded(n, "sta1", "sta2", "sync", baseline=placed,
                                                 cpus=placed))
        rows.append(("STA->STA, STAs on 2 CPUs", _stats(ours), "two loops, 2 cpus",
                     _stats(base), _ratio(ours, base)))
    two = rows[1][3]
    ours, _ = asyncio.run(comsim_threaded(max(200, n // 10), "sta1", "sta2", "cancel"))
    rows.append(("STA->STA Cancel(0)->Finish_", _stats(ours), "two loops", two,
                 _stats(ours)["p50"] / two["p50"]))
    det = _stats(comsim_deterministic(n))
    rows.append(("deterministic STA->STA", det, "one loop", one, det["p50"] / one["p50"]))
    report = {
        label: {"p50_us": round(st["p50"], 2), "p99_us": round(st["p99"], 2),
                "baseline": base, "baseline_p50_us": round(bst["p50"], 2),
                "baseline_p99_us": round(bst["p99"], 2), "ratio_p50": round(ratio, 2)}
        for label, st, base, bst, ratio in rows
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'call':30} {'p50 us':>9} {'p99 us':>9}   {'baseline':14} {'p50 us':>9} "
              f"{'p99 us':>9} {'ratio':>6}")
        for label, r in report.items():
            print(f"{label:30} {r['p50_us']:9.2f} {r['p99_us']:9.2f}   {r['baseline']:14} "
                  f"{r['baseline_p50_us']:9.2f} {r['baseline_p99_us']:9.2f} "
                  f"{r['ratio_p50']:5.2f}x")
    return report


if __name__ == "__main__":
    main()
