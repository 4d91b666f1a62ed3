"""The race zoo benchmark: how many runs each exploration strategy needs to find each planted
bug of ``benchmarks/zoo`` (issue 12, item 6).

    python benchmarks/race_zoo.py [--trials 20] [--budget N] [--quick] [--jobs 2]
                                  [--only NAME,...] [--json FILE]

Per scenario of depth d:
- the PCT budget ``B = ceil(ln(20) / pct_bound)``, where ``pct_bound`` is what
  ``explore(strategy="pct", depth=d)`` reports after a warm-up exploration (1/(n k^(d-1)):
  B runs find a depth-d bug with >= 95% probability by PCT's bound); ``--budget`` overrides;
- "pct-channels": the same with PCT's priorities on channels (sender, receiver), with its own
  budget from its own bound;
- "random" and "pct": ``--trials`` trials, trial t runs seeds ``range(t*B, (t+1)*B)`` and
  stops at the first find; the median runs to the first find (a trial that found nothing
  counts as never: the median is then ">B" when half or more missed), and the share of
  trials that found it within B;
- "exhaustive": one trial, runs until the first find, and whether it exhausted every order.
Last, the aggregate ratio of random's to PCT's runs (sums of the medians) over the depth-3
scenarios, and whether the issue's targets hold (PCT finds every bug within B in >= 95% of
trials; on depth 3, >= 10x fewer runs than random).

Only ``comsim.testing.explore`` is used; a scenario's ``AssertionError`` (its bug) is caught
by a wrapper and becomes the outcome ``("planted bug", message)``, since ``explore`` stops
and re-raises what a scenario raises.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Hashable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import comsim
from benchmarks.zoo import ZOO, Entry
from comsim.testing import explore
from comsim.testing._runs import Raised

STRATEGIES = ("random", "pct", "pct-channels", "exhaustive")
#: PCT's 95% confidence: (1 - p)^B <= 1/20 when B >= ln(20)/p
CONFIDENCE_LOG = math.log(20)
QUICK_TRIALS = 3
QUICK_CAP = 200  # --quick: at most this many runs per trial
EXHAUSTIVE_CAP = 100_000


class Captured:
    """The scenario with its planted bug (an ``AssertionError``) as an outcome."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, rt: comsim.Runtime) -> Hashable:
        try:
            return await _entry(self.name).scenario(rt)
        except AssertionError as exc:  # not ``Raised``: explore would re-raise that
            return (BUG, str(exc))


def _entry(name: str) -> Entry:
    for e in ZOO:
        if e.name == name:
            return e
    raise KeyError(name)


BUG = "planted bug"


def is_bug(outcome: Hashable) -> bool:
    return isinstance(outcome, Raised) or (isinstance(outcome, tuple) and len(outcome) == 2
                                           and outcome[0] == BUG)


def _found(f: Any) -> bool:
    return any(is_bug(k) for k in f)


def _first_find(f: Any) -> int | None:
    """Runs up to and including the first that raised (explore stops there)."""
    return f.runs if _found(f) else None


def pct_budget(name: str, strategy: str = "pct") -> tuple[int, float]:
    """B = ceil(ln 20 / pct_bound), with pct_bound from a warm-up PCT exploration (its k is
    the most choice steps of a run seen, its n the receivers, or channels, that competed)."""
    e = _entry(name)
    f = explore(Captured(name), range(10**9, 10**9 + 30), strategy=strategy, depth=e.depth)
    bound = float(f.pct_bound or 1.0)
    return math.ceil(CONFIDENCE_LOG / bound), bound


def run_job(name: str, strategy: str, trials: int, budget: int) -> dict[str, Any]:
    e = _entry(name)
    s = Captured(name)
    t0 = time.perf_counter()
    if strategy == "exhaustive":
        f = explore(s, range(min(EXHAUSTIVE_CAP, budget)), strategy="exhaustive",
                    until=_found)
        return {"scenario": name, "strategy": strategy, "runs_to_find": [_first_find(f)],
                "runs": f.runs, "exhausted": f.exhausted,
                "seconds": time.perf_counter() - t0}
    finds: list[int | None] = []
    total = 0
    for t in range(trials):
        f = explore(s, range(t * budget, (t + 1) * budget), strategy=strategy,
                    depth=e.depth, until=_found)
        finds.append(_first_find(f))
        total += f.runs
    return {"scenario": name, "strategy": strategy, "runs_to_find": finds, "runs": total,
            "seconds": time.perf_counter() - t0}


def median_runs(finds: list[int | None]) -> float:
    """The median of runs to the first find; a miss counts as infinitely many."""
    return float(statistics.median(math.inf if x is None else x for x in finds))


def runs_per_find(finds: list[int | None], budget: int) -> float:
    """Runs spent per find over all trials (a trial that missed spent its whole budget): the
    maximum-likelihood estimate of the expected runs to a find, 1/p, where the median is
    censored by the budget."""
    n = sum(x is not None for x in finds)
    spent = sum(budget if x is None else x for x in finds)
    return spent / n if n else math.inf


def found_share(finds: list[int | None]) -> float:
    return sum(x is not None for x in finds) / len(finds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--budget", type=int, default=None,
                    help="runs per trial (default: PCT's 95%% budget per scenario)")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_TRIALS} trials, at most {QUICK_CAP} runs per trial")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--json", default=None, metavar="FILE", help="write every figure ('-': stdout)")
    args = ap.parse_args(argv)
    trials = QUICK_TRIALS if args.quick else args.trials
    entries = [e for e in ZOO if not args.only or e.name in args.only.split(",")]
    t0 = time.perf_counter()

    budgets: dict[str, tuple[int, float]] = {}
    channel_budgets: dict[str, tuple[int, float]] = {}
    for e in entries:
        for table, strategy in ((budgets, "pct"), (channel_budgets, "pct-channels")):
            b, bound = pct_budget(e.name, strategy)
            if args.budget is not None:
                b = args.budget
            if args.quick:
                b = min(b, QUICK_CAP)
            table[e.name] = (b, bound)

    def budget_of(n: str, s: str) -> int:
        if s == "exhaustive":
            return EXHAUSTIVE_CAP
        return (channel_budgets if s == "pct-channels" else budgets)[n][0]

    jobs = [(e.name, s) for e in entries for s in STRATEGIES]
    results: dict[tuple[str, str], dict[str, Any]] = {}
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futs = {pool.submit(run_job, n, s, trials, budget_of(n, s)): (n, s)
                    for n, s in jobs}
            for fut, key in futs.items():
                results[key] = fut.result()
    else:
        for n, s in jobs:
            results[(n, s)] = run_job(n, s, trials, budget_of(n, s))

    rows = []
    for e in entries:
        b, bound = budgets[e.name]
        r, p, c, x = (results[(e.name, s)] for s in STRATEGIES)
        cb, cbound = channel_budgets[e.name]
        rows.append({
            "scenario": e.name, "depth": e.depth, "pct_bound": bound, "budget": b,
            "random_median": median_runs(r["runs_to_find"]),
            "random_found": found_share(r["runs_to_find"]),
            "pct_median": median_runs(p["runs_to_find"]),
            "pct_found": found_share(p["runs_to_find"]),
            "channels_budget": cb, "channels_pct_bound": cbound,
            "channels_median": median_runs(c["runs_to_find"]),
            "channels_found": found_share(c["runs_to_find"]),
            "channels_runs_to_find": c["runs_to_find"],
            "random_runs_per_find": runs_per_find(r["runs_to_find"], b),
            "pct_runs_per_find": runs_per_find(p["runs_to_find"], b),
            "channels_runs_per_find": runs_per_find(c["runs_to_find"], cb),
            "exhaustive_runs": x["runs_to_find"][0], "exhaustive_exhausted": x["exhausted"],
            "exhaustive_total_runs": x["runs"],
            "random_runs_to_find": r["runs_to_find"], "pct_runs_to_find": p["runs_to_find"],
            "seconds": {s: results[(e.name, s)]["seconds"] for s in STRATEGIES},
        })
    deep = [row for row in rows if row["depth"] == 3]
    ratio = None
    if deep:
        rsum = sum(row["random_median"] for row in deep)
        psum = sum(row["pct_median"] for row in deep)
        ratio = rsum / psum if psum else math.inf
    cratio = None
    expected: dict[str, float] = {}
    if deep:
        csum = sum(row["channels_median"] for row in deep)
        cratio = rsum / csum if csum else math.inf
        for k in ("random", "pct", "channels"):
            expected[k] = sum(row[f"{k}_runs_per_find"] for row in deep)
    targets = {
        "pct_within_budget_95": all(row["pct_found"] >= 0.95 for row in rows),
        "pct_misses": [row["scenario"] for row in rows if row["pct_found"] < 0.95],
        "depth3_random_over_pct": ratio,
        "depth3_ratio_ge_10": ratio is not None and ratio >= 10,
        "channels_within_budget_95": all(row["channels_found"] >= 0.95 for row in rows),
        "channels_misses": [row["scenario"] for row in rows if row["channels_found"] < 0.95],
        "depth3_random_over_channels": cratio,
        # the same from runs per find (not censored by the budget, as a median of misses is)
        "depth3_expected_random_over_pct": (expected["random"] / expected["pct"]
                                            if expected else None),
        "depth3_expected_random_over_channels": (expected["random"] / expected["channels"]
                                                 if expected else None),
    }
    report = {"trials": trials, "quick": args.quick, "python": sys.version.split()[0],
              "platform": platform.platform(), "cpus": os.cpu_count(),
              "seconds": time.perf_counter() - t0, "rows": rows, "targets": targets}
    _print(rows, targets, trials, report["seconds"])
    if args.json:
        text = json.dumps(report, indent=1, default=_jsonable)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    return 0


def _jsonable(x: Any) -> Any:
    return None if isinstance(x, float) and math.isinf(x) else str(x)


def _fmt(x: float, budget: int | None = None) -> str:
    if math.isinf(x):
        return f">{budget}" if budget is not None else "inf"
    return f"{x:g}"


def _print(rows: list[dict[str, Any]], targets: dict[str, Any], trials: int,
           seconds: float) -> None:
    out = sys.stdout
    head = (f"{'scenario':26} {'d':>1} {'budget':>6} {'random':>8} {'found':>6} "
            f"{'pct':>8} {'found':>6} {'ch.budget':>9} {'pct-ch.':>8} {'found':>6} "
            f"{'exhaustive':>12}")
    print(f"race zoo: median runs to the first find over {trials} trials "
          f"(budget B = ceil(ln 20 / pct_bound) runs per trial)", file=out)
    print(head, file=out)
    print("-" * len(head), file=out)
    for row in rows:
        b = row["budget"]
        ex = row["exhaustive_runs"]
        ex_s = (f"{ex}" if ex is not None else f"none/{row['exhaustive_total_runs']}")
        ex_s += " (all)" if row["exhaustive_exhausted"] else ""
        print(f"{row['scenario']:26} {row['depth']:>1} {b:>6} "
              f"{_fmt(row['random_median'], b):>8} {row['random_found']:>6.0%} "
              f"{_fmt(row['pct_median'], b):>8} {row['pct_found']:>6.0%} "
              f"{row['channels_budget']:>9} "
              f"{_fmt(row['channels_median'], row['channels_budget']):>8} "
              f"{row['channels_found']:>6.0%} {ex_s:>12}", file=out)
    r = targets["depth3_random_over_pct"]
    print(file=out)
    print(f"PCT finds every bug within its budget in >=95% of trials: "
          f"{targets['pct_within_budget_95']}"
          + (f" (misses: {', '.join(targets['pct_misses'])})" if targets["pct_misses"] else ""),
          file=out)
    print(f"PCT over channels, the same: {targets['channels_within_budget_95']}"
          + (f" (misses: {', '.join(targets['channels_misses'])})"
             if targets["channels_misses"] else ""), file=out)
    if r is not None:
        print(f"depth 3: random/PCT runs (sums of medians) = {r:.2f} "
              f"(target >= 10: {targets['depth3_ratio_ge_10']}); random/PCT over channels = "
              f"{targets['depth3_random_over_channels']:.2f}", file=out)
        print(f"depth 3: random/PCT runs per find (all trials) = "
              f"{targets['depth3_expected_random_over_pct']:.1f}; random/PCT over channels = "
              f"{targets['depth3_expected_random_over_channels']:.1f}", file=out)
    print(f"{seconds:.1f} s", file=out)


if __name__ == "__main__":
    sys.exit(main())
