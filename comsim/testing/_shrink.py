"""Replaying and shrinking schedules: ``replay`` gives a scenario's outcome under a schedule;
``shrink`` looks for the schedule with the fewest preemptions (decisions other than the
default: the oldest message, no deferral) that still gives an outcome the caller wants to keep:
the schedule with none first, then delta debugging over the preemptions."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from .._core.check import BadArgumentType, BadArgumentValue
from .._runtime.schedule import DEFER, OLDEST, ReplayPolicy, Schedule
from ._runs import Scenario, run_once, scenario_name

__all__ = ["replay", "shrink"]

#: what a deterministic scenario is not (the hint of the errors below)
_NOT_DETERMINISTIC = ("a scenario replays only if it is deterministic: no real clock, no "
                      "unseeded random, no threads, no global state carried between runs")


def replay(scenario: Scenario, schedule: Schedule) -> Hashable:
    """The outcome of ``scenario`` under ``schedule`` (exceptions count as outcomes).

    A run that does not follow the schedule (a decision that picks a message that is not
    pending, or decisions left over when the run ended: the schedule was recorded for another
    scenario, the code changed since, or the scenario is not deterministic) gives the outcome
    of the run as it went, where a decision that does not fit is the default, and warns
    (``RuntimeWarning``).

    Raises:
        COMError(E_INVALIDARG), also a TypeError: ``schedule`` is not a ``Schedule``;
            ``scenario`` is not an ``async def scenario(rt)``.
    """
    _check("replay", scenario, schedule)
    policy = _Following(schedule.decisions)
    outcome = run_once(scenario, schedule.seed, policy, api="replay")[0]
    if policy.misfit is not None or policy.step < len(schedule.decisions):
        where = policy.misfit or (f"the run ended after {policy.step} of the schedule's "
                                  f"{len(schedule.decisions)} decisions")
        warnings.warn(f"replay: the run of {scenario_name(scenario)} did not follow the schedule "
                      f"({where}); the outcome {outcome!r} is the run's as it went, a decision "
                      f"that did not fit taken as the default. Was the schedule recorded for "
                      f"another scenario, or did the code change since? Else {_NOT_DETERMINISTIC}",
                      RuntimeWarning, stacklevel=2)
    return outcome


def shrink(scenario: Scenario, schedule: Schedule,
           keep: Callable[[Hashable], bool], *, max_runs: int = 1000) -> Schedule:
    """A schedule with as few preemptions (decisions other than the default) as can be found
    whose outcome still satisfies ``keep``: first the schedule with none (every decision the
    default), then delta debugging over the preemptions, in chunks halved down to one at a
    time, in at most ``max_runs`` runs (the schedule's own replay and the one with no
    preemptions included; a schedule tried once is not run again). Exceptions raised by the
    scenario are outcomes (``Raised(type, message)``). Gives ``schedule`` itself (as replayed,
    trailing default decisions dropped) when nothing can go. What ``keep`` raises propagates.

    Raises:
        COMError(E_INVALIDARG), also a ValueError: ``schedule``'s own outcome does not satisfy
            ``keep``; ``max_runs`` < 1.
        COMError(E_INVALIDARG), also a TypeError: ``schedule`` is not a ``Schedule``,
            ``scenario`` not an ``async def scenario(rt)``, ``keep`` not callable,
            ``max_runs`` not an int.
    """
    _check("shrink", scenario, schedule)
    if not callable(keep):
        raise BadArgumentType(f"shrink: keep must be a function of the outcome, e.g. "
                              f"keep=lambda outcome: isinstance(outcome, Raised), not {keep!r}")
    if isinstance(max_runs, bool) or not isinstance(max_runs, int):
        raise BadArgumentType(f"shrink: max_runs must be an int, not {max_runs!r}")
    if max_runs < 1:
        raise BadArgumentValue(f"shrink: max_runs must be >= 1, not {max_runs!r}")
    outcome, best = run_once(scenario, schedule.seed, ReplayPolicy(schedule.decisions),
                             api="shrink")
    if not keep(outcome):
        raise BadArgumentValue(
            f"shrink: the schedule's own outcome {outcome!r} does not satisfy keep, so there "
            f"is nothing to keep while shrinking: give the schedule of a run whose outcome "
            f"keep accepts (explore's found.schedules[outcome]), or a keep that accepts this "
            f"outcome; if that run's outcome did satisfy keep, {_NOT_DETERMINISTIC}")
    runs = 1
    if best.preemptions == 0:
        return Schedule(_trim(best.decisions), schedule.seed)
    #: the runs made so far, by their (trimmed) decisions: the schedule each gave, if its
    #: outcome satisfied keep (a replay is deterministic: a schedule tried once is known)
    tried: dict[tuple[int, ...], Schedule | None] = {}

    def attempt(decisions: list[int]) -> Schedule | None:
        """The schedule of the run under ``decisions`` if it keeps and has fewer preemptions
        than the best so far, else None. Raises ``_Spent`` for a run past ``max_runs``."""
        nonlocal runs
        key = tuple(_trim(decisions))
        if key in tried:
            sched = tried[key]
        else:
            if runs >= max_runs:
                raise _Spent
            runs += 1
            got, ran = run_once(scenario, schedule.seed, ReplayPolicy(key))
            sched = tried[key] = ran if keep(got) else None
        return sched if sched is not None and sched.preemptions < best.preemptions else None

    try:
        found = attempt([])  # the schedule with no preemptions (every decision the default)
        if found is not None:
            best = found
        chunk = max(1, best.preemptions // 2)
        while best.preemptions > 0 and chunk >= 1:
            spots = [i for i, d in enumerate(best.decisions) if d != OLDEST]
            found = None
            for start in range(0, len(spots), chunk):
                drop = set(spots[start:start + chunk])
                found = attempt([OLDEST if i in drop else d
                                 for i, d in enumerate(best.decisions)])
                if found is not None:
                    break
            if found is not None:
                best = found
            else:
                chunk //= 2
    except _Spent:
        pass
    return Schedule(_trim(best.decisions), schedule.seed)


class _Spent(Exception):
    """``shrink`` has made its ``max_runs`` runs."""


def _trim(decisions: list[int]) -> list[int]:
    """Trailing default decisions add nothing to a replay."""
    end = len(decisions)
    while end and decisions[end - 1] == OLDEST:
        end -= 1
    return decisions[:end]


def shrink_or_keep(scenario: Scenario, schedule: Schedule,
                   keep: Callable[[Hashable], bool]) -> Schedule:
    """``shrink``, or ``schedule`` itself when its run, replayed, gives no outcome ``keep``
    accepts (it does not replay as it ran): a failing run's schedule is saved either way."""
    try:
        return shrink(scenario, schedule, keep=keep)
    except ValueError:
        return schedule


# ------------------------------------------------------------------ checks
def _check(api: str, scenario: Any, schedule: Any) -> None:
    """A scenario that gives no awaitable is found by its first run (``run_once``)."""
    if not isinstance(schedule, Schedule):
        raise BadArgumentType(f"{api}: schedule must be a comsim.testing.Schedule "
                              f"(Schedule.load(path) reads a saved one), not {schedule!r}")
    if not callable(scenario):
        raise BadArgumentType(f"{api}: scenario must be an `async def scenario(rt)`, "
                              f"not {scenario!r}")


class _Following(ReplayPolicy):
    """``ReplayPolicy``, noting the first decision that does not fit the run."""

    def __init__(self, decisions: Sequence[int]) -> None:
        super().__init__(decisions)
        self.misfit: str | None = None

    def choose(self, targets: Sequence[str | None], proposal: int) -> int:
        i = self.step
        if self.misfit is None and i < len(self.decisions):
            d = self.decisions[i]
            if d != DEFER and not 0 <= d < len(targets):
                self.misfit = (f"its decision {i} picks message {d}, but {len(targets)} "
                               f"{'is' if len(targets) == 1 else 'are'} pending there")
        return super().choose(targets, proposal)
