"""Exhaustive exploration: every distinct delivery order of the deterministic pump once.

Two deliveries to different apartments commute (comsim's messages have known receivers), so
orders that differ only by swapping such deliveries are one Mazurkiewicz trace; deliveries to
one apartment (request vs. request, cancel vs. reply) do not commute. The search is depth first
by re-execution: each run replays a prefix of choices, then takes the first message it may, and
records at each step the pending messages (by ordinal: the n-th message enqueued, the same in
every run sharing the prefix) and a sleep set (Godefroid's partial-order reduction): a message
already explored at an ancestor, and independent of every delivery since, need not be tried
again. Sleep sets are sound: every trace is reached, and the reduction only drops repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._runtime.schedule import DEFER, Schedule
from .._runtime.vtloop import all_tasks_blocked
from ._runs import Exploration, Raised, Scenario, run_once

#: the seed of the runtime's other seeded choices (faults, latency functions) in every run
SEED = 0


class _Step:
    __slots__ = ("chosen", "done", "pending", "sleep")

    def __init__(self, pending: dict[int, str | None], sleep: dict[int, str | None],
                 chosen: int) -> None:
        self.pending = pending  # ordinal -> receiver
        self.sleep = sleep  # ordinal -> receiver: need not be tried here
        self.done: dict[int, str | None] = {}  # explored here already
        self.chosen = chosen


class _DFSPolicy:
    """Replays ``prefix`` (ordinals), then takes the first awake message; records the steps."""

    def __init__(self, prefix: Sequence[int], steps: list[_Step], reduce: bool = True) -> None:
        self.reduce = reduce
        self.prefix = prefix
        self.steps = steps  # steps[:len(prefix)] come from earlier runs, kept as they are
        self.i = 0
        self.quiet_waits = 0
        self.transport: Any = None

    def bind(self, transport: Any) -> None:
        self.transport = transport

    def choose(self, targets: Sequence[str | None], proposal: int) -> int:
        transport = self.transport
        # deliveries happen when everything else has run (the loop is quiet): a delivery to
        # one apartment commutes with the ready work of the others, and an apartment takes a
        # message in only when its own work waits; so the only choice is which message
        if not all_tasks_blocked(transport.loop) and self.quiet_waits < QUIET_LIMIT:
            self.quiet_waits += 1
            return DEFER
        self.quiet_waits = 0
        ordinals: list[int] = transport.ordinals
        i = self.i
        self.i = i + 1
        if i < len(self.prefix):
            want = self.prefix[i]
            return ordinals.index(want) if want in ordinals else 0
        pending: dict[int, str | None] = dict(zip(ordinals, targets, strict=True))
        if i == 0 or not self.reduce:
            sleep: dict[int, str | None] = {}
        else:
            prev = self.steps[i - 1]
            carried = {**prev.sleep, **prev.done}
            receiver = prev.pending[prev.chosen]
            sleep = {o: t for o, t in carried.items()
                     if o in pending and t != receiver and o != prev.chosen}
        awake = [o for o in ordinals if o not in sleep]
        chosen = awake[0] if awake else ordinals[0]
        del self.steps[i:]
        self.steps.append(_Step(pending, sleep, chosen))
        return ordinals.index(chosen)


#: a delivery waits for the loop to be quiet at most this many times in a row (a task that
#: never waits, polling in a loop, would keep it busy for ever)
QUIET_LIMIT = 64


def exhaustive(scenario: Scenario, budget: int,
               until: Callable[[Exploration], bool] | None = None, *,
               reduce: bool = True,
               on_raise: Callable[[int, Schedule, Raised], None] | None = None
               ) -> Exploration:
    """Run every distinct delivery order of ``scenario`` once, at most ``budget`` runs; the
    keys of the result are outcomes, each with the number of the first run that reached it.
    A run whose scenario raises is the outcome ``Raised(type, message)``, and ``on_raise`` (if
    given) is called with its run number and schedule. ``reduce=False`` turns the
    partial-order reduction off: every order, commuting deliveries included (to measure what
    the reduction saves)."""
    found = Exploration()
    steps: list[_Step] = []
    prefix: list[int] | None = []
    for run_no in range(budget):
        assert prefix is not None
        policy = _DFSPolicy(prefix, steps, reduce)
        outcome, schedule = run_once(scenario, SEED, policy)
        if on_raise is not None and isinstance(outcome, Raised):
            on_raise(run_no, Schedule(schedule.decisions, SEED), outcome)
        found._add(run_no, outcome, Schedule(schedule.decisions, SEED))
        if until is not None and until(found):
            return found
        del steps[policy.i:]  # a run can end sooner than the prefix said
        prefix = _backtrack(steps)
        if prefix is None:
            found.exhausted = True
            return found
    return found


def _backtrack(steps: list[_Step]) -> list[int] | None:
    """The next prefix: at the deepest step with an awake message not yet explored, that
    message; None when every order has been run."""
    while steps:
        step = steps[-1]
        step.done[step.chosen] = step.pending[step.chosen]
        awake = [o for o in step.pending if o not in step.sleep and o not in step.done]
        if awake:
            step.chosen = awake[0]
            return [s.chosen for s in steps]
        steps.pop()
    return None
