"""Exhaustive exploration's partial-order reduction: optimal DPOR over what deliveries touch
(``comsim.testing._dpor``), beside sleep sets alone and every order."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from comsim._runtime.loop import all_tasks_blocked
from comsim._runtime.schedule import DEFER
from comsim.testing import explore
from comsim.testing._dpor_watch import Watched, watching
from comsim.testing._exhaustive import exhaustive
from comsim.testing._runs import run_once

from .scenarios import two_callers

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT))
import explore_orders  # noqa: E402

from benchmarks.race_zoo import Captured  # noqa: E402

#: runs of exhaustive with the reduction, and of every order, on examples/explore_orders.py
ORDERS_REDUCED = 13
ORDERS_EVERY = 149


def _random_outcomes(scenario: Any, seeds: int) -> set[Any]:
    return set(explore(scenario, range(seeds)))


def test_the_cancel_race_reaches_every_outcome_random_reaches() -> None:
    reduced = exhaustive(explore_orders.scenario, 10_000)
    every = exhaustive(explore_orders.scenario, 10_000, reduce=False)
    assert reduced.exhausted and every.exhausted
    assert (reduced.runs, every.runs) == (ORDERS_REDUCED, ORDERS_EVERY)
    assert reduced.runs * 10 <= every.runs  # issue 12: at least 10x fewer runs
    assert set(reduced) == set(every) == {"queued", "running", "finished",
                                           "completed before the cancel"}
    assert _random_outcomes(explore_orders.scenario, 2000) <= set(reduced)


def test_two_callers_reach_every_outcome_with_fewer_runs() -> None:
    reduced = exhaustive(two_callers, 10_000)
    every = exhaustive(two_callers, 10_000, reduce=False)
    assert reduced.exhausted and every.exhausted
    assert set(reduced) == set(every)
    assert _random_outcomes(two_callers, 1000) <= set(reduced)
    assert reduced.runs * 10 <= every.runs


def test_sleep_sets_alone_are_still_there() -> None:
    found = exhaustive(two_callers, 10_000, reduce="sleep")
    assert found.exhausted and len(found) == 6
    assert exhaustive(two_callers, 10_000, reduce="dpor").runs == \
        exhaustive(two_callers, 10_000).runs


def test_the_reduction_reaches_what_sleep_sets_over_receivers_miss() -> None:
    # the zoo's shutdown race: whether the client's call meets the pool's stub disconnected
    # or its apartment shut down depends on the order of deliveries to different apartments
    scenario = Captured("shutdown_races_call")
    sampled = set(explore(scenario, range(300)))
    reduced = exhaustive(scenario, 5000)
    sleep = exhaustive(scenario, 5000, reduce="sleep")
    assert reduced.exhausted and sleep.exhausted
    assert sampled <= set(reduced)
    missed = sampled - set(sleep)
    assert missed and all("RPC_E_DISCONNECTED" in str(m) for m in missed)


@pytest.mark.parametrize("name", ["reentrant_half_update", "request_overtaken",
                                  "cancel_before_testcancel", "signal_races_finish",
                                  "git_revoke_races_get", "nested_record"])
def test_zoo_races_reach_every_outcome_random_reaches(name: str) -> None:
    scenario = Captured(name)
    reduced = exhaustive(scenario, 5000)
    assert reduced.exhausted
    assert set(explore(scenario, range(500))) <= set(reduced)


class _Quiet:
    """Delivers when the loop is quiet: the oldest message, except ``later`` (a key: sender,
    receiver, handler) is held back until ``first`` has been delivered; then notes what is
    pending."""

    def __init__(self, first: tuple[Any, ...], later: tuple[Any, ...]) -> None:
        self.first, self.later = first, later
        self.seen_first = False
        self.after: Counter[tuple[Any, ...]] | None = None
        self.transport: Any = None
        self.waits = 0

    def bind(self, transport: Any) -> None:
        self.transport = transport

    def _keys(self) -> list[tuple[Any, ...]]:
        t = self.transport
        return [(s, r, getattr(m[1], "__name__", "?"))
                for s, r, m in zip(t.senders, t.targets, t.pending, strict=True)]

    def choose(self, targets: Sequence[str | None], proposal: int) -> int:
        if not all_tasks_blocked(self.transport.loop) and self.waits < 64:
            self.waits += 1
            return DEFER
        self.waits = 0
        keys = self._keys()
        if self.seen_first and self.after is None and self.later not in keys:
            self.after = Counter(keys)  # both delivered: what they left pending
        for k, key in enumerate(keys):
            if key == self.later and not self.seen_first:
                continue
            if key == self.first:
                self.seen_first = True
            return k
        return 0


def test_deliveries_to_different_apartments_do_not_always_commute() -> None:
    # why the reduction watches the runtime's shared state: ui's Cancel reads the stage the
    # worker's side of the call wrote (R29), so the request reaching the worker and the reply
    # that wakes ui's cancel leave different states in the two orders
    request = ("ui", "worker", "on_request")
    wakes_cancel = ("other", "ui", "on_reply")
    states = []
    for first, later in ((request, wakes_cancel), (wakes_cancel, request)):
        policy = _Quiet(first, later)
        outcome, _ = run_once(explore_orders.scenario, 0, policy)
        states.append((outcome, policy.after))
    (one, after_one), (two, after_two) = states
    assert after_one is not None and after_two is not None
    assert after_one != after_two  # Work called other only where the request ran first
    assert two == "queued" and one != "queued"


def test_the_locks_are_watched_only_while_exploring() -> None:
    import comsim._runtime.stubs as stubs

    before = stubs._stub_lock
    assert not isinstance(before, Watched)
    with watching():
        assert isinstance(stubs._stub_lock, Watched)
        with stubs._stub_lock:  # still a lock
            assert stubs._stub_lock.locked()
    assert stubs._stub_lock is before
    exhaustive(two_callers, 3)
    assert stubs._stub_lock is before


def test_exploring_in_two_threads_at_once() -> None:
    results: list[Any] = []

    def go() -> None:
        results.append(exhaustive(two_callers, 10_000))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.runs for r in results] == [results[0].runs] * 2
    assert set(results[0]) == set(results[1])


@pytest.mark.parametrize("budget", [1, 5])
def test_a_small_budget_says_it_did_not_finish(budget: int) -> None:
    found = exhaustive(explore_orders.scenario, budget)
    assert found.runs == budget and not found.exhausted
