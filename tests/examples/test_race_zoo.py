"""The race zoo (benchmarks/zoo): every planted bug stays hidden under the default schedule
and is found within a small budget by some strategy; the benchmark script runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import comsim
from comsim.testing import Schedule, explore, replay
from comsim.testing._runs import Raised

from ..helpers import ROOT

sys.path.insert(0, str(ROOT))

from benchmarks.race_zoo import Captured, is_bug
from benchmarks.zoo import ZOO

BUDGET = 300
#: the long-phase bug hides from everything but PCT for far longer (PCT finds it at seed 830)
BUDGETS = {"long_phases": 1000}


@pytest.mark.parametrize("entry", ZOO, ids=[e.name for e in ZOO])
def test_default_schedule_hides_the_bug(entry) -> None:  # type: ignore[no-untyped-def]
    outcome = replay(entry.scenario, Schedule([], seed=0))
    assert not isinstance(outcome, Raised), outcome
    assert 1 <= entry.depth <= 3 and entry.scenario.__doc__ and "Depth" in entry.scenario.__doc__


@pytest.mark.parametrize("entry", ZOO, ids=[e.name for e in ZOO])
def test_some_strategy_finds_the_bug(entry) -> None:  # type: ignore[no-untyped-def]
    scenario = Captured(entry.name)
    budget = BUDGETS.get(entry.name, BUDGET)
    for strategy in ("pct", "random", "exhaustive"):
        found = explore(scenario, range(budget), strategy=strategy, depth=entry.depth,
                        until=lambda f: any(is_bug(k) for k in f))
        bugs = [k for k in found if is_bug(k)]
        if bugs:
            # the bug replays from its schedule, raising
            again = replay(entry.scenario, found.schedules[bugs[0]])
            assert isinstance(again, Raised) and again.type == "AssertionError", again
            return
    pytest.fail(f"{entry.name}: no strategy found the bug in {budget} runs")


def test_race_zoo_script_quick() -> None:
    out = subprocess.run([sys.executable, "benchmarks/race_zoo.py", "--quick", "--jobs", "1",
                          "--only", "reentrant_half_update,nested_record,crossed_records",
                          "--json", "-"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "crossed_records" in out.stdout and "random/PCT" in out.stdout
    report = json.loads(out.stdout[out.stdout.index("{"):])
    assert [r["scenario"] for r in report["rows"]] == ["reentrant_half_update",
                                                       "nested_record", "crossed_records"]
    assert comsim  # the package imports beside the benchmark
