"""Exploration's speed and power, measured in one run.

    python benchmarks/exploration.py            # the figures of the README
    python benchmarks/exploration.py --quick    # a small run, several seconds

1. Runs per second of ``explore`` on ``examples/explore_cancel_race.py`` (random strategy, one
   process), beside a raw-Python baseline from the same run: ``asyncio.run`` of an empty
   coroutine, the least a run on a fresh loop could cost.
2. The cost of recording the schedule: the same runs with the pump's ``decisions`` list
   replaced by one that keeps nothing.
3. Speed-up with workers: the same seeds with ``workers=N`` for N = 1 .. the machine's cores
   (the results are checked equal).
4. Exhaustive exploration with partial-order reduction (optimal DPOR over what deliveries
   touch), with the sleep sets of old, and without reduction on ``examples/explore_orders.py``,
   a two-caller scenario and (without ``--quick``) race zoo scenarios: runs to exhaust, and
   whether every outcome random exploration reaches is reached.

Each timed figure is the median of ``--rounds`` rounds; the ratio to the raw baseline is the
median of the ratios of rounds that alternate the two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

import explore_cancel_race  # noqa: E402
import explore_orders  # noqa: E402

from comsim.testing import explore  # noqa: E402
from comsim.testing._exhaustive import exhaustive  # noqa: E402
from tests.testing.scenarios import two_callers  # noqa: E402


def _rate(fn: Any, n: int, rounds: int) -> float:
    """Median calls per second of ``fn(n)`` (n calls per round)."""
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(n)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def _empty_runs(n: int) -> None:
    async def nothing() -> None:
        pass

    for _ in range(n):
        asyncio.run(nothing())


class _Forget(list):  # type: ignore[type-arg]
    """A decisions list that records nothing."""

    def append(self, item: Any) -> None:
        pass


def _without_recording(n: int) -> None:
    async def scenario(rt: Any) -> Any:
        rt._transport.decisions = _Forget()
        return await explore_cancel_race.scenario(rt)

    explore(scenario, range(n))


def _with_recording(n: int) -> None:
    async def scenario(rt: Any) -> Any:  # the same wrapper, recording
        return await explore_cancel_race.scenario(rt)

    explore(scenario, range(n))


def speed(n: int, rounds: int) -> dict[str, Any]:
    explore(explore_cancel_race.scenario, range(20))  # warm up
    # alternate the two, round by round, so that a shared machine's slow and fast phases hit
    # both alike; the ratio is the median of the rounds' ratios
    comsim_rates, raw_rates = [], []
    for _ in range(rounds):
        comsim_rates.append(_rate(lambda k: explore(explore_cancel_race.scenario, range(k)),
                                  n, 1))
        raw_rates.append(_rate(_empty_runs, n, 1))
    comsim_rate, raw_rate = statistics.median(comsim_rates), statistics.median(raw_rates)
    ratio = statistics.median(r / c for r, c in zip(raw_rates, comsim_rates, strict=True))
    # recording: alternate the two, round by round, and take the median of the ratios
    ratios = []
    for _ in range(rounds):
        on = _rate(_with_recording, n, 1)
        off = _rate(_without_recording, n, 1)
        ratios.append(off / on)
    return {"runs_per_s": comsim_rate, "raw_empty_asyncio_run_per_s": raw_rate,
            "ratio_to_raw": ratio,
            "recording_cost": statistics.median(ratios) - 1.0}


def workers(n: int, rounds: int) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"cores": cores, "speedup": {}}
    one = explore(explore_cancel_race.scenario, range(n))
    base = _rate(lambda k: explore(explore_cancel_race.scenario, range(k)), n, rounds)
    for w in range(2, cores + 1):
        other = explore(explore_cancel_race.scenario, range(n), workers=w)
        assert dict(other) == dict(one) and other.counts == one.counts
        rate = _rate(lambda k, w=w: explore(explore_cancel_race.scenario, range(k), workers=w),
                     n, rounds)
        out["speedup"][w] = rate / base
    return out


#: race zoo scenarios (``benchmarks/zoo``) on which every mode of exhaustive finishes
ZOO_REDUCTION = ("reentrant_half_update", "request_overtaken", "cancel_before_testcancel",
                 "signal_races_finish", "git_revoke_races_get", "nested_record")
#: a race zoo scenario on which the sleep sets of old miss an outcome random reaches
ZOO_SLEEP_MISSES = ("shutdown_races_call",)


def reduction(quick: bool = False) -> dict[str, Any]:
    """Runs to exhaust with the reduction (optimal DPOR over observed footprints), with the
    sleep sets of old, and for every order; whether each reaches every outcome random
    exploration reaches."""
    from benchmarks.race_zoo import Captured

    cases: list[tuple[str, Any]] = [("explore_orders", explore_orders.scenario),
                                    ("two_callers", two_callers)]
    if not quick:
        cases += [(name, Captured(name)) for name in ZOO_REDUCTION + ZOO_SLEEP_MISSES]
    out = {}
    for name, scenario in cases:
        reduced = exhaustive(scenario, 100_000)
        sleep = exhaustive(scenario, 100_000, reduce="sleep")
        every = exhaustive(scenario, 100_000 if name != "shutdown_races_call" else 5000,
                           reduce=False)
        sampled = set(explore(scenario, range(300 if quick else 2000)))
        out[name] = {"runs_reduced": reduced.runs, "runs_sleep_sets": sleep.runs,
                     "runs_every_order": every.runs,
                     "exhausted": reduced.exhausted and sleep.exhausted and every.exhausted,
                     "fewer": every.runs / reduced.runs, "outcomes": len(reduced),
                     "reaches_random_outcomes": sampled <= set(reduced),
                     "sleep_sets_reach_random_outcomes": sampled <= set(sleep)}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000, help="runs per timed round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="--runs 300 --rounds 3")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ns = ap.parse_args(argv)
    if ns.quick:
        ns.runs, ns.rounds = 300, 3
    figures = {"speed": speed(ns.runs, ns.rounds), "workers": workers(ns.runs * 2, ns.rounds),
               "reduction": reduction(ns.quick)}
    s = figures["speed"]
    print(f"explore_cancel_race: {s['runs_per_s']:.0f} runs/s on one core "
          f"(raw baseline, an empty asyncio.run: {s['raw_empty_asyncio_run_per_s']:.0f}/s, "
          f"{s['ratio_to_raw']:.1f}x)")
    print(f"recording the schedule costs {s['recording_cost']:+.1%} of a run")
    for w, x in figures["workers"]["speedup"].items():
        print(f"workers={w}: {x:.2f}x the runs/s of workers=1 "
              f"({x / w:.2f} per worker; {figures['workers']['cores']} cores)")
    for name, r in figures["reduction"].items():
        every = f"{r['runs_every_order']}" + ("" if r["exhausted"] else "+")
        print(f"exhaustive {name}: {r['runs_reduced']} runs with the reduction, "
              f"{every} for every order ({r['fewer']:.1f}x fewer), "
              f"{r['outcomes']} outcomes, every random outcome reached: "
              f"{r['reaches_random_outcomes']}; sleep sets of old: {r['runs_sleep_sets']} "
              f"runs, every random outcome reached: {r['sleep_sets_reach_random_outcomes']}")
    if ns.json:
        Path(ns.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
