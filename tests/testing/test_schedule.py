"""Recorded schedules: every pump decision recorded, replayed exactly, saved and loaded;
shrinking; the random, PCT and exhaustive strategies; parallel exploration."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import comsim
from comsim._runtime.schedule import DEFER, Schedule
from comsim.testing import capture_trace, run
from comsim.testing._explore import Raised, explore, replay, shrink

from .scenarios import fails_when_b_first, two_callers


def _traced(scenario, **runtime_kw):  # type: ignore[no-untyped-def]
    box = {}

    async def main():  # type: ignore[no-untyped-def]
        async with comsim.Runtime(deterministic=True, **runtime_kw) as rt:
            with capture_trace() as events:
                box["outcome"] = await scenario(rt)
            box["schedule"] = rt.schedule
            box["events"] = list(events)

    run(main)
    return box


def test_a_recorded_schedule_replays_the_run_event_for_event() -> None:  # API: replay
    for seed in range(8):
        first = _traced(two_callers, seed=seed)
        sched = first["schedule"]
        assert isinstance(sched, Schedule) and sched.seed == seed and sched.decisions
        again = _traced(two_callers, schedule=sched)
        assert again["events"] == first["events"]
        assert again["outcome"] == first["outcome"]
        assert again["schedule"] == sched


def test_preemptions_count_the_decisions_that_differ_from_the_default() -> None:
    assert Schedule([0, 0, 1, DEFER, 0, 2]).preemptions == 3
    default = _traced(two_callers, schedule=Schedule([], seed=0))["schedule"]
    assert default.preemptions == 0 and default.decisions  # oldest first, no deferral


def test_save_and_load_round_trip_a_100000_step_schedule(tmp_path: Path) -> None:
    decisions = [(i * 7919) % 5 - 1 for i in range(100_000)]
    sched = Schedule(decisions, seed=42)
    path = tmp_path / "s.json"
    sched.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "comsim-schedule" and data["version"] == 1
    loaded = Schedule.load(path)
    assert loaded == sched and loaded.decisions == decisions and loaded.seed == 42


@pytest.mark.parametrize("bad", [
    {"format": "other"}, {"format": "comsim-schedule", "version": 99, "decisions": []},
    {"format": "comsim-schedule", "version": 1, "decisions": [0, -2]},
    {"format": "comsim-schedule", "version": 1, "decisions": [], "seed": "x"},
])
def test_loading_what_is_no_schedule_is_refused(tmp_path: Path, bad: dict) -> None:  # type: ignore[type-arg]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError):
        Schedule.load(path)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"format": ' + "[" * 100_000])
def test_loading_json_nested_too_deep_is_refused(tmp_path: Path, text: str) -> None:
    # before: a RecursionError out of the decoder (an INTERNALERROR under --comsim-replay)
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(comsim.COMError) as err:
        Schedule.load(path)
    assert isinstance(err.value, ValueError)
    assert "Schedule.load" in str(err.value)


def test_schedule_needs_the_deterministic_runtime() -> None:
    with pytest.raises(ValueError, match="deterministic=True"):
        comsim.Runtime(schedule=Schedule([]))
    with pytest.raises(TypeError):
        comsim.Runtime(deterministic=True, schedule=[0, 1])  # type: ignore[arg-type]


def test_explore_keeps_each_outcomes_schedule_and_replay_reaches_it() -> None:
    found = explore(two_callers, range(60))
    assert len(found) >= 2
    for outcome, sched in found.schedules.items():
        assert replay(two_callers, sched) == outcome
    assert found.runs == 60 and sum(found.counts.values()) == 60
    assert 1 <= found.interleavings <= 60


def test_a_raising_scenario_is_an_outcome_for_replay_and_shrink(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="b first") as exc:
        explore(fails_when_b_first, range(60), save_dir=tmp_path)
    notes = exc.value.__notes__
    seed = int(re.search(r"failed under seed (\d+)", notes[0]).group(1))  # type: ignore[union-attr]
    saved = tmp_path / f"{fails_when_b_first.__module__}.fails_when_b_first-seed{seed}.json"
    assert str(saved) in notes[1] and f"--comsim-replay {saved}" in notes[1]
    from_file = Schedule.load(saved)
    assert from_file.preemptions == 1  # shrunk: one choice puts b first
    assert isinstance(replay(fails_when_b_first, from_file), Raised)
    failing = _schedule_of(fails_when_b_first, seed)
    outcome = replay(fails_when_b_first, failing)
    assert isinstance(outcome, Raised) and outcome.type == "AssertionError"
    shrunk = shrink(fails_when_b_first, failing, keep=lambda o: isinstance(o, Raised))
    assert shrunk.preemptions <= failing.preemptions
    assert shrunk.preemptions >= 1  # the default order serves a first: b first needs a choice
    assert isinstance(replay(fails_when_b_first, shrunk), Raised)


def _schedule_of(scenario, seed):  # type: ignore[no-untyped-def]
    from comsim.testing._explore import run_once

    return run_once(scenario, seed)[1]


def test_shrink_refuses_a_schedule_that_does_not_keep() -> None:
    sched = _schedule_of(two_callers, 0)
    with pytest.raises(ValueError):
        shrink(two_callers, sched, keep=lambda o: False)


def test_pct_reports_its_bound_and_finds_the_outcomes() -> None:
    found = explore(two_callers, range(60), strategy="pct", depth=2)
    assert found.pct_bound is not None and 0 < found.pct_bound <= 1
    random_found = explore(two_callers, range(200))
    assert set(found) <= set(random_found) | set(found)
    assert len(found) >= 2


def test_exhaustive_runs_every_order_once_and_says_so() -> None:
    found = explore(two_callers, range(5000), strategy="exhaustive")
    assert found.exhausted
    assert len(found) == 6  # every order of a's two calls and b's two calls at c
    random_found = explore(two_callers, range(300))
    assert set(random_found) <= set(found)  # every outcome random reaches
    assert 6 <= found.interleavings <= found.runs < 5000
    # a budget that is too small says so
    assert not explore(two_callers, range(10), strategy="exhaustive").exhausted


def test_bad_strategy_is_refused() -> None:
    with pytest.raises(comsim.COMError) as exc:
        explore(two_callers, range(1), strategy="bfs")
    assert exc.value.hresult == comsim.hresult.E_INVALIDARG


def test_parallel_exploration_equals_sequential() -> None:
    one = explore(two_callers, range(40))
    with ThreadPoolExecutor(2) as pool:  # any concurrent.futures.Executor
        two = explore(two_callers, range(40), executor=pool)
    assert dict(one) == dict(two) and one.counts == two.counts
    assert one.schedules == two.schedules


def test_parallel_exploration_in_processes_equals_sequential() -> None:
    one = explore(two_callers, range(24))
    two = explore(two_callers, range(24), workers=2)
    assert dict(one) == dict(two) and one.counts == two.counts


def test_parallel_pct_equals_sequential() -> None:
    # PCT's k moves only between blocks of runs, so a block's runs can go to any worker
    one = explore(two_callers, range(70), strategy="pct", depth=2)
    with ThreadPoolExecutor(3) as pool:
        three = explore(two_callers, range(70), strategy="pct", depth=2, executor=pool)
    assert dict(one) == dict(three) and one.counts == three.counts
    assert one.schedules == three.schedules and one.pct_bound == three.pct_bound


def test_parallel_exploration_stops_at_the_same_failing_seed(tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as one:
        explore(fails_when_b_first, range(64), save_dir=tmp_path / "one")
    with pytest.raises(AssertionError) as two:
        explore(fails_when_b_first, range(64), workers=2, save_dir=tmp_path / "two")
    assert one.value.__notes__[0] == two.value.__notes__[0]  # the same seed
    assert ([p.name for p in (tmp_path / "one").iterdir()]
            == [p.name for p in (tmp_path / "two").iterdir()])


def test_workers_need_a_scenario_importable_by_name() -> None:
    async def local(rt: comsim.Runtime) -> int:
        return 1

    with pytest.raises(ValueError, match="importable by name"):
        explore(local, range(2), workers=2)
    with pytest.raises(ValueError, match="workers"):
        explore(two_callers, range(2), workers=0)


def test_exhaustive_reduction_runs_fewer_orders_and_reaches_the_same_outcomes() -> None:
    from comsim.testing._exhaustive import exhaustive

    reduced = exhaustive(two_callers, 5000)
    every = exhaustive(two_callers, 5000, reduce=False)
    assert reduced.exhausted and every.exhausted
    assert set(reduced) == set(every)
    assert reduced.runs * 10 <= every.runs  # deliveries to different apartments commute


def test_exhaustive_raises_with_the_saved_schedule(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="b first") as exc:
        explore(fails_when_b_first, range(5000), strategy="exhaustive", save_dir=tmp_path)
    assert "exhaustive run" in exc.value.__notes__[-1]
    (saved,) = tmp_path.iterdir()
    assert saved.name.startswith(f"{fails_when_b_first.__module__}.fails_when_b_first-run")
    assert isinstance(replay(fails_when_b_first, Schedule.load(saved)), Raised)


def test_pct_over_channels_lets_a_message_overtake_one_to_the_same_receiver() -> None:
    import random
    from types import SimpleNamespace

    from comsim._runtime.schedule import PCTPolicy

    targets = ["c", "c"]  # two messages to c: from a (older), then from b
    transport = SimpleNamespace(senders=["a", "b"])
    for seed in range(20):
        by_receiver = PCTPolicy(random.Random(seed), 1, 10)
        assert by_receiver.choose(targets, 0) == 0  # first in first out at one receiver
        by_channel = PCTPolicy(random.Random(seed), 1, 10, channels=True)
        by_channel.bind(transport)
        pick = by_channel.choose(targets, 0)
        prio = by_channel.priority
        assert pick == (1 if prio[("b", "c")] > prio[("a", "c")] else 0)
        assert by_receiver.choice_steps == 0 and by_channel.choice_steps == 1


def test_pct_over_channels_explores_and_reports_its_bound() -> None:
    found = explore(two_callers, range(64), strategy="pct-channels", depth=2)
    assert found.pct_bound is not None and 0 < found.pct_bound <= 1
    assert len(found) >= 3
    with ThreadPoolExecutor(2) as pool:
        again = explore(two_callers, range(64), strategy="pct-channels", depth=2,
                        executor=pool)
    assert again.counts == found.counts
