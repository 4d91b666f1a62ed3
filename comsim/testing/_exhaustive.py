"""Exhaustive exploration: every distinct delivery order of the deterministic pump once.

The search is depth first by re-execution: each run replays a prefix of choices, then takes
the first message it may. A message is delivered only when the loop is quiet, so the only
choice is which message. Orders that differ only by swapping deliveries that commute are one
Mazurkiewicz trace, and need one run. Which deliveries commute is the question: deliveries to
one apartment never do, and deliveries to different apartments do unless they touch the
runtime's shared state (a call's stage, a stub's references, the GIT, an apartment's
teardown). By default (``_dpor``) that is observed, and optimal DPOR runs one order per trace.
``reduce="sleep"`` keeps the reduction of old: sleep sets (Godefroid) over "deliveries to
different apartments commute" alone, at each step recording the pending messages (by ordinal:
the n-th message enqueued, the same in every run sharing the prefix) and the messages asleep.
That claim does not hold in comsim (a cancel reads the stage the server's side wrote), and the
sleep sets can miss outcomes (``tests/testing/test_exhaustive_reduction.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal

from .._runtime.loop import all_tasks_blocked
from .._runtime.schedule import DEFER, Schedule
from ._dpor import QUIET_LIMIT, SEED, Search
from ._runs import Exploration, Raised, Scenario, run_once


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


def exhaustive(scenario: Scenario, budget: int,
               until: Callable[[Exploration], bool] | None = None, *,
               reduce: bool | Literal["sleep", "dpor"] = True,
               on_raise: Callable[[int, Schedule, Raised], None] | None = None
               ) -> Exploration:
    """Run every distinct delivery order of ``scenario`` once, at most ``budget`` runs; the
    keys of the result are outcomes, each with the number of the first run that reached it.
    A run whose scenario raises is the outcome ``Raised(type, message)``, and ``on_raise`` (if
    given) is called with its run number and schedule. ``reduce=False`` turns the
    partial-order reduction off: every order, commuting deliveries included (to measure what
    the reduction saves). ``reduce=True`` (or ``"dpor"``) is optimal DPOR over what deliveries
    are seen to touch (``_dpor``); ``reduce="sleep"``, the reduction of old: sleep sets over
    "deliveries to different apartments commute", which comsim's shared state breaks (a cancel
    reads the stage the server's side of the call wrote), so that it can miss outcomes."""
    found = Exploration()
    search: _DFS | Search = (Search() if reduce is True or reduce == "dpor"
                             else _DFS(reduce == "sleep"))
    for run_no in range(budget):
        outcome, schedule = search.run(scenario)
        if on_raise is not None and isinstance(outcome, Raised):
            on_raise(run_no, Schedule(schedule.decisions, SEED), outcome)
        found._add(run_no, outcome, Schedule(schedule.decisions, SEED))
        if until is not None and until(found):
            return found
        if not search.advance():
            found.exhausted = True
            return found
    return found


class _DFS:
    """The depth-first search of every order, with sleep sets (``sleep_sets``) or none."""

    def __init__(self, sleep_sets: bool) -> None:
        self.sleep_sets = sleep_sets
        self.steps: list[_Step] = []
        self.prefix: list[int] = []
        self.current: _DFSPolicy | None = None

    def run(self, scenario: Scenario) -> tuple[Hashable, Schedule]:
        """The next run: its outcome and schedule."""
        self.current = _DFSPolicy(self.prefix, self.steps, self.sleep_sets)
        return run_once(scenario, SEED, self.current)

    def advance(self) -> bool:
        """After a run: whether there is another to run."""
        assert self.current is not None
        del self.steps[self.current.i:]  # a run can end sooner than the prefix said
        prefix = _backtrack(self.steps)
        if prefix is None:
            return False
        self.prefix = prefix
        return True


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
