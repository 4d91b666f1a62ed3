"""``explore``'s faults, each fixed with this test: PCT's first k drawn from an unseeded run,
a depth PCT cannot draw, a bound too small for a float, saved schedules of one name."""

from __future__ import annotations

from pathlib import Path

import pytest

import comsim
from comsim import hresult as hr
from comsim.testing import explore
from comsim.testing._explore import MAX_DEPTH, pct_bound

from . import scenarios
from .scenarios import flaky_callers, two_callers


@pytest.mark.parametrize("strategy", ["pct", "pct-channels"])
def test_pct_gives_one_result_per_seed_when_the_scenario_draws_from_the_seed(
        strategy: str) -> None:
    # before: the run that measures PCT's first k ran unseeded, so a scenario whose steps
    # depend on the runtime's generator (fault injection, latency) got another k, another
    # bound and other change points from one call of explore to the next
    results = set()
    for _ in range(6):
        found = explore(flaky_callers, [5, 6], strategy=strategy, depth=3)
        results.add((found.pct_bound, tuple(sorted(
            (seed, tuple(s.decisions)) for seed, s in
            ((found[o], found.schedules[o]) for o in found)))))
    assert len(results) == 1


def test_a_depth_beyond_the_most_is_refused_where_it_enters() -> None:
    # before: a depth of 10**9 tried to draw as many change points (gigabytes)
    with pytest.raises(comsim.COMError) as info:
        explore(two_callers, range(2), strategy="pct", depth=MAX_DEPTH + 1)
    assert info.value.hresult == hr.E_INVALIDARG and isinstance(info.value, ValueError)
    assert f"depth must be at most {MAX_DEPTH}" in str(info.value)


def test_a_deep_bound_below_a_floats_reach_is_zero() -> None:
    # before: the last run's bound raised OverflowError, and every result was lost
    assert pct_bound(2, 10, 2) == 1 / 20
    assert pct_bound(3, 1000, MAX_DEPTH) == 0.0
    found = explore(two_callers, range(3), strategy="pct", depth=MAX_DEPTH)
    assert found.runs == 3 and found.pct_bound == 0.0


def test_saved_schedules_of_one_name_in_two_modules_do_not_overwrite(tmp_path: Path) -> None:
    # every example's scenario is called ``scenario``; before, the second file replaced the
    # first
    async def scenario(rt: comsim.Runtime) -> None:
        raise AssertionError("here")

    other = scenarios.raises_bracketed
    for fn in (scenario, other):
        with pytest.raises((AssertionError, KeyError)):
            explore(fn, range(1), save_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([f"{__name__}.{scenario.__qualname__}-seed0.json".replace("<", "_")
                            .replace(">", "_"),
                            f"{scenarios.__name__}.raises_bracketed-seed0.json"])
