"""Exploration: run one scenario under many schedules of the deterministic pump, keep each
distinct outcome with the first run that reached it and its ``Schedule``; replay a schedule;
shrink a schedule to the fewest preemptions that keep an outcome.

Strategies (``explore(strategy=...)``): ``"random"``, the seeded pump (a seed per run);
``"pct"``, probabilistic concurrency testing for messages (``schedule.PCTPolicy``; each run's
priorities and change points drawn from its seed); ``"exhaustive"``, every distinct delivery
order once, where deliveries to different apartments commute (a run per order, depth first).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from .._runtime.schedule import OLDEST, PCTPolicy, ReplayPolicy, Schedule
from ._exhaustive import exhaustive
from ._runs import Exploration, Raised, Scenario, run_once

__all__ = ["STRATEGIES", "Exploration", "Raised", "Scenario", "explore", "replay", "run_once",
           "shrink"]

STRATEGIES = ("random", "pct", "exhaustive")

def replay(scenario: Scenario, schedule: Schedule) -> Hashable:
    """The outcome of ``scenario`` under ``schedule`` (exceptions count as outcomes)."""
    return run_once(scenario, schedule.seed, ReplayPolicy(schedule.decisions))[0]


def shrink(scenario: Scenario, schedule: Schedule,
           keep: Callable[[Hashable], bool]) -> Schedule:
    """A schedule with as few preemptions (decisions other than the default) as can be found
    whose outcome still satisfies ``keep``: delta debugging over the preemptions, then one at a
    time. Gives ``schedule`` itself (as replayed) when nothing can go.

    Raises:
        ValueError: ``schedule``'s own outcome does not satisfy ``keep``.
    """
    outcome, best = run_once(scenario, schedule.seed, ReplayPolicy(schedule.decisions))
    if not keep(outcome):
        raise ValueError(f"the schedule's own outcome {outcome!r} does not satisfy keep")

    def attempt(decisions: list[int]) -> Schedule | None:
        got, sched = run_once(scenario, schedule.seed, ReplayPolicy(decisions))
        return sched if keep(got) and sched.preemptions < best.preemptions else None

    chunk = max(1, best.preemptions // 2)
    while chunk >= 1:
        spots = [i for i, d in enumerate(best.decisions) if d != OLDEST]
        progressed = False
        for start in range(0, len(spots), chunk):
            drop = set(spots[start:start + chunk])
            trial = [OLDEST if i in drop else d for i, d in enumerate(best.decisions)]
            found = attempt(_trim(trial))
            if found is not None:
                best, progressed = found, True
                break
        if not progressed:
            chunk //= 2
    return Schedule(_trim(best.decisions), schedule.seed)


def _trim(decisions: list[int]) -> list[int]:
    """Trailing default decisions add nothing to a replay."""
    end = len(decisions)
    while end and decisions[end - 1] == OLDEST:
        end -= 1
    return decisions[:end]


def explore(scenario: Scenario, seeds: Iterable[int] = range(200), *,
            until: Callable[[Exploration], bool] | None = None, strategy: str = "random",
            depth: int = 3, workers: int = 1, executor: Executor | None = None
            ) -> Exploration:
    """Run ``scenario(rt)`` once per seed, each on a fresh deterministic runtime in virtual
    time, under ``strategy``; gives the distinct outcomes, each with the first seed that reached
    it and its ``Schedule`` (replay it with ``Runtime(deterministic=True, schedule=...)`` or
    ``replay``). ``until`` stops early once it returns True. ``workers=N`` runs seeds in N
    processes (the scenario must be importable by its module and name), ``executor=`` on any
    ``concurrent.futures.Executor``; the result equals ``workers=1``'s.

    Raises:
        Whatever the scenario raises, with a note naming the seed ("random", "pct").
        COMError(E_INVALIDARG), also a ValueError: an unknown strategy, ``depth`` < 1.
    """
    from .._core.check import BadArgumentValue

    if strategy not in STRATEGIES:
        raise BadArgumentValue(f"explore: strategy must be one of {STRATEGIES}, "
                               f"not {strategy!r}")
    if depth < 1:
        raise BadArgumentValue(f"explore: depth must be >= 1, not {depth!r}")
    if strategy == "exhaustive":
        return exhaustive(scenario, budget=len(list(seeds)), until=until)
    seeds = list(seeds)
    if (workers > 1 or executor is not None) and strategy == "random":
        return _parallel(scenario, seeds, until, workers, executor)
    found = Exploration()
    k = 0
    if strategy == "pct":
        default = run_once(scenario, None, ReplayPolicy([]), capture=False)[1]
        k = len(default.decisions)
    receivers: set[str | None] = set()
    for seed in seeds:
        policy = None
        if strategy == "pct":
            import random

            policy = PCTPolicy(random.Random(seed), depth, k)
        outcome, schedule = run_once(scenario, seed, policy, capture=False)
        found._add(seed, outcome, schedule)
        if strategy == "pct":
            k = max(k, len(schedule.decisions))
            receivers |= set(getattr(policy, "priority", {}))
            n = max(1, len(receivers))
            found.pct_bound = 1.0 / (n * max(k, 1) ** (depth - 1))
        if until is not None and until(found):
            break
    return found


# ------------------------------------------------------------------ parallel runs
def _by_name(scenario: Scenario) -> tuple[str, str]:
    module, name = getattr(scenario, "__module__", None), getattr(scenario, "__qualname__", "")
    if not module or "<" in name:
        raise ValueError("explore(workers=...): the scenario must be importable by name "
                         f"(a module-level function), not {scenario!r}")
    return module, name


def _import(module: str, name: str) -> Scenario:
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _run_seeds(module: str, name: str, seeds: list[int]
               ) -> list[tuple[int, Hashable, list[int], int | None]]:
    """In a worker: each seed's outcome and schedule (plain data, to cross processes)."""
    scenario = _import(module, name)
    out = []
    for seed in seeds:
        outcome, schedule = run_once(scenario, seed, None, capture=False)
        out.append((seed, outcome, schedule.decisions, schedule.seed))
    return out


def _parallel(scenario: Scenario, seeds: list[int], until: Callable[[Exploration], bool] | None,
              workers: int, executor: Executor | None) -> Exploration:
    module, name = _by_name(scenario)
    own = executor is None
    pool: Executor = executor or ProcessPoolExecutor(max_workers=max(1, workers))
    n = max(1, workers if executor is None else workers or 1)
    size = max(1, -(-len(seeds) // (n * 4)))
    chunks = [seeds[i:i + size] for i in range(0, len(seeds), size)]
    try:
        futures = [pool.submit(_run_seeds, module, name, chunk) for chunk in chunks]
        found = Exploration()
        for fut in futures:  # in seed order: the result is the sequential one
            for seed, outcome, decisions, sseed in fut.result():
                found._add(seed, outcome, Schedule(decisions, sseed))
                if until is not None and until(found):
                    for f in futures:
                        f.cancel()
                    return found
        return found
    finally:
        if own:
            pool.shutdown(cancel_futures=True)
