"""Replaying and shrinking schedules: ``replay`` gives a scenario's outcome under a schedule;
``shrink`` looks for the schedule with the fewest preemptions (decisions other than the
default: the oldest message, no deferral) that still gives an outcome the caller wants to keep,
by delta debugging over the preemptions."""

from __future__ import annotations

from collections.abc import Callable, Hashable

from .._runtime.schedule import OLDEST, ReplayPolicy, Schedule
from ._runs import Scenario, run_once

__all__ = ["replay", "shrink"]


def replay(scenario: Scenario, schedule: Schedule) -> Hashable:
    """The outcome of ``scenario`` under ``schedule`` (exceptions count as outcomes)."""
    return run_once(scenario, schedule.seed, ReplayPolicy(schedule.decisions))[0]


def shrink(scenario: Scenario, schedule: Schedule,
           keep: Callable[[Hashable], bool], *, max_runs: int = 1000) -> Schedule:
    """A schedule with as few preemptions (decisions other than the default) as can be found
    whose outcome still satisfies ``keep``: delta debugging over the preemptions, halving the
    chunks dropped at once down to one at a time, in at most ``max_runs`` runs. Exceptions
    raised by the scenario are outcomes (``Raised(type, message)``). Gives ``schedule`` itself
    (as replayed, trailing default decisions dropped) when nothing can go.

    Raises:
        ValueError: ``schedule``'s own outcome does not satisfy ``keep``.
    """
    outcome, best = run_once(scenario, schedule.seed, ReplayPolicy(schedule.decisions))
    if not keep(outcome):
        raise ValueError(f"the schedule's own outcome {outcome!r} does not satisfy keep")
    runs = 1

    def attempt(decisions: list[int]) -> Schedule | None:
        nonlocal runs
        runs += 1
        got, sched = run_once(scenario, schedule.seed, ReplayPolicy(decisions))
        return sched if keep(got) and sched.preemptions < best.preemptions else None

    chunk = max(1, best.preemptions // 2)
    while chunk >= 1:
        spots = [i for i, d in enumerate(best.decisions) if d != OLDEST]
        progressed = False
        for start in range(0, len(spots), chunk):
            if runs >= max_runs:
                return Schedule(_trim(best.decisions), schedule.seed)
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
