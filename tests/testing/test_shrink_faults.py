"""``shrink`` tries the schedule with no preemptions first (every decision the default), and
each stage of its delta debugging tries dropping every preemption at once; a schedule it has
run once is not run again, and the run with none counts against ``max_runs``."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import pytest

import comsim
from comsim.testing import Raised, Schedule, _shrink, replay, shrink
from comsim.testing._runs import run_once

from ..helpers import load_example
from .scenarios import fails_when_b_first, two_callers

_orders = load_example("explore_orders", prefix="_comsim_shrink_", register=False)


def _recorded(scenario: Any, seed: int) -> tuple[Hashable, Schedule]:
    """The outcome and schedule of the seeded pump's run under ``seed``."""
    return run_once(scenario, seed)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, ...]]]:
    """The decisions of every run ``shrink`` makes, in order (its own first replay included)."""
    made: list[tuple[int, ...]] = []
    def counting(scenario: Any, seed: int | None, policy: Any = None, **kw: Any) -> Any:
        made.append(tuple(policy.decisions))
        return run_once(scenario, seed, policy, **kw)

    monkeypatch.setattr(_shrink, "run_once", counting)
    yield made


def test_the_cancel_race_shrinks_to_the_default_order() -> None:  # R29
    # seed 33 of examples/explore_orders.py finds the cancel with the call `finished` after four
    # preemptions; the default order gives that outcome with none (delta debugging alone, by
    # halves, stopped at three)
    outcome, sched = _recorded(_orders.scenario, 33)
    assert outcome == "finished" and sched.preemptions == 4
    assert replay(_orders.scenario, Schedule([], sched.seed)) == outcome
    shrunk = shrink(_orders.scenario, sched, keep=lambda o: o == outcome)
    assert shrunk.preemptions == 0 and shrunk.decisions == []
    assert replay(_orders.scenario, shrunk) == outcome


@pytest.mark.parametrize("seed", range(8))
def test_an_outcome_the_default_order_gives_shrinks_to_no_preemptions(seed: int) -> None:
    default = replay(two_callers, Schedule([], seed))
    outcome, sched = _recorded(two_callers, seed)
    shrunk = shrink(two_callers, sched, keep=lambda o: o == outcome)
    if outcome == default:
        assert shrunk.preemptions == 0
    else:  # the default order gives another outcome: a preemption stays
        assert 1 <= shrunk.preemptions <= sched.preemptions
    assert replay(two_callers, shrunk) == outcome


def test_the_run_with_no_preemptions_is_the_first_after_the_replay(
        runs: list[tuple[int, ...]]) -> None:
    outcome, sched = _recorded(_orders.scenario, 33)
    shrunk = shrink(_orders.scenario, sched, keep=lambda o: o == outcome, max_runs=2)
    assert runs == [tuple(sched.decisions), ()]
    assert shrunk.preemptions == 0


def test_the_run_with_no_preemptions_counts_against_max_runs(
        runs: list[tuple[int, ...]]) -> None:
    outcome, sched = _recorded(_orders.scenario, 33)
    # one run: the schedule's own replay, and nothing else; it is given back as replayed
    shrunk = shrink(_orders.scenario, sched, keep=lambda o: o == outcome, max_runs=1)
    assert runs == [tuple(sched.decisions)]
    assert shrunk == Schedule(_shrink._trim(list(sched.decisions)), sched.seed)
    assert shrunk.preemptions == sched.preemptions == 4


def test_a_schedule_is_run_once_however_often_a_stage_tries_it(
        runs: list[tuple[int, ...]]) -> None:
    # b first needs a preemption: the schedule with none (every stage's "all at once") does not
    # keep, and is run once, just after the replay
    for seed in range(60):
        outcome, sched = _recorded(fails_when_b_first, seed)
        if isinstance(outcome, Raised) and sched.preemptions >= 3:
            break
    else:
        pytest.fail("no seed below 60 puts b first with three preemptions")
    runs.clear()
    shrunk = shrink(fails_when_b_first, sched, keep=lambda o: isinstance(o, Raised))
    assert runs[1] == ()
    assert len(runs) == len(set(runs))  # no schedule run twice
    assert shrunk.preemptions == 1
    assert isinstance(replay(fails_when_b_first, shrunk), Raised)


def test_a_schedule_without_preemptions_makes_one_run(runs: list[tuple[int, ...]]) -> None:
    outcome = replay(two_callers, Schedule([], 0))
    runs.clear()
    shrunk = shrink(two_callers, Schedule([], 0), keep=lambda o: o == outcome)
    assert shrunk == Schedule([], 0) and len(runs) == 1


def test_max_runs_must_be_positive() -> None:
    with pytest.raises(comsim.COMError):
        shrink(two_callers, Schedule([], 0), keep=bool, max_runs=0)
