"""When an STA starts and resumes units (comsim._core.sta.StaScheduler): R2, R16.

Synchronous unit tests of the sans-IO scheduler; no event loop.
"""

from __future__ import annotations

from typing import Any

import pytest

from comsim._core.constants import (
    PENDINGMSG_CANCELCALL,
    PENDINGMSG_WAITDEFPROCESS,
    PENDINGMSG_WAITNOPROCESS,
)
from comsim._core.sta import (
    CancelOutgoing,
    Resume,
    Start,
    StaScheduler,
    Unit,
    UnitKind,
    Wait,
    WaitKind,
)


def call(name: str) -> Unit:
    return Unit(UnitKind.CALL, payload=name)


def run(name: str) -> Unit:
    return Unit(UnitKind.RUN, payload=name)


def started(actions: list[Any]) -> list[Any]:
    return [a.unit.payload for a in actions if isinstance(a, Start)]


def resumed(actions: list[Any]) -> list[Wait]:
    return [a.wait for a in actions if isinstance(a, Resume)]


def acts(actions: list[Any]) -> list[tuple[str, Any]]:
    """Actions as comparable tuples (the action classes define no equality)."""
    out: list[tuple[str, Any]] = []
    for a in actions:
        if isinstance(a, Start):
            out.append(("start", a.unit))
        elif isinstance(a, Resume):
            out.append(("resume", a.wait))
        elif isinstance(a, CancelOutgoing):
            out.append(("cancel", a.wait))
        else:
            raise AssertionError(f"unknown action {a!r}")
    return out


class Filter:
    """A MessagePending stand-in that records what it is asked."""

    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.asked: list[tuple[Any, Wait, bool]] = []

    def __call__(self, unit: Unit, wait: Wait, nested: bool) -> int:
        self.asked.append((unit.payload, wait, nested))
        return self.answer


# --- one at a time, arrival order (R2) -------------------------------------------------------


def test_idle_sta_starts_first_unit_at_once() -> None:  # R2
    s = StaScheduler()
    assert s.idle
    u = call("a")
    assert acts(s.arrive(u)) == [("start", u)]
    assert not s.idle and s.top is u


def test_units_start_one_at_a_time_in_arrival_order() -> None:  # R2
    s = StaScheduler()
    a, b, c, d = call("a"), run("b"), call("c"), run("d")
    assert started(s.arrive(a)) == ["a"]
    # a is busy (not in a COM wait): nothing else starts, whatever its kind
    assert s.arrive(b) == []
    assert s.arrive(c) == []
    assert s.arrive(d) == []
    assert started(s.end(a)) == ["b"]
    assert started(s.end(b)) == ["c"]
    assert started(s.end(c)) == ["d"]
    assert s.end(d) == []
    assert s.idle


def test_non_com_busy_unit_blocks_the_queue() -> None:  # R2: an anyio.sleep is a blocked thread
    s = StaScheduler()
    a = run("a")
    s.arrive(a)
    s.arrive(call("b"))
    assert s.innermost_wait() is None
    assert len(s.stack) == 1 and len(s.queue) == 1


# --- nesting during a COM wait (R2) ----------------------------------------------------------


@pytest.mark.parametrize("kind", list(WaitKind))
def test_next_unit_starts_nested_only_during_com_wait(kind: WaitKind) -> None:  # R2
    s = StaScheduler()
    a, b, c = call("a"), call("b"), call("c")
    s.arrive(a)
    s.arrive(b)
    s.arrive(c)
    _w, actions = s.begin_wait(a, kind)
    # exactly one unit starts, the oldest: b is busy and c waits
    assert started(actions) == ["b"]
    assert s.stack == [a, b]
    assert s.queue == [c]
    assert s.innermost_wait() is None  # b on top is not waiting


def test_unit_arriving_during_wait_starts_nested() -> None:  # R2
    s = StaScheduler()
    a, b = call("a"), run("b")
    s.arrive(a)
    w, actions = s.begin_wait(a, WaitKind.OTHER)
    assert actions == []
    assert s.innermost_wait() is w
    assert acts(s.arrive(b)) == [("start", b)]
    assert s.stack == [a, b]


def test_wait_of_unit_not_on_top_starts_nothing() -> None:  # R2
    s = StaScheduler()
    a, b, c = call("a"), call("b"), call("c")
    s.arrive(a)
    s.begin_wait(a, WaitKind.OTHER)
    s.arrive(b)  # nested on a
    s.arrive(c)  # queued: b is busy
    # a task of a (below the top) begins another wait: b is still busy, c must not start
    _w2, actions = s.begin_wait(a, WaitKind.OTHER)
    assert actions == []
    assert s.queue == [c]


# --- last in, first out (R2) -----------------------------------------------------------------


def test_ready_wait_on_top_resumes_at_once() -> None:  # R2
    s = StaScheduler()
    a = call("a")
    s.arrive(a)
    w, _ = s.begin_wait(a, WaitKind.CALL)
    assert s.wait_ready(w) == []  # the waiter goes on: w.ended says so, no Resume needed
    assert w.ended
    assert not a.in_com_wait


def test_ready_wait_below_top_resumes_only_after_units_above_end() -> None:  # R2
    s = StaScheduler()
    a, b, c = call("a"), call("b"), call("c")
    s.arrive(a)
    wa, _ = s.begin_wait(a, WaitKind.CALL)
    s.arrive(b)  # nested on a
    wb, _ = s.begin_wait(b, WaitKind.OTHER)
    s.arrive(c)  # nested on b
    assert s.stack == [a, b, c]

    assert s.wait_ready(wa) == []  # a's call is done, but a is not on top
    assert not wa.ended
    assert s.end(c) == []  # b's wait is not ready: b stays suspended, a too
    assert s.wait_ready(wb) == [] and wb.ended  # b is on top now
    assert not wa.ended
    actions = s.end(b)
    assert resumed(actions) == [wa]  # only now does a resume
    assert wa.ended
    assert s.stack == [a]


def test_queued_unit_does_not_start_while_a_resumed_unit_runs() -> None:  # R2
    s = StaScheduler()
    a, b, c = call("a"), call("b"), call("c")
    s.arrive(a)
    wa, _ = s.begin_wait(a, WaitKind.OTHER)
    s.arrive(b)  # nested
    s.arrive(c)  # queued
    s.wait_ready(wa)
    actions = s.end(b)
    # a resumes; it is busy again, so c waits for a to end or wait again
    assert resumed(actions) == [wa]
    assert started(actions) == []
    assert started(s.end(a)) == ["c"]


def test_top_in_second_wait_lets_next_unit_nest() -> None:  # R2
    s = StaScheduler()
    a, b, c = call("a"), call("b"), call("c")
    s.arrive(a)
    s.begin_wait(a, WaitKind.OTHER)
    s.arrive(b)
    s.arrive(c)
    _wb, actions = s.begin_wait(b, WaitKind.CALL)
    assert started(actions) == ["c"]
    assert s.stack == [a, b, c]


def test_withdraw_takes_only_queued_units() -> None:  # R2 R29
    s = StaScheduler()
    a, b = call("a"), call("b")
    s.arrive(a)
    s.arrive(b)
    assert s.withdraw(a) is False  # started
    assert s.withdraw(b) is True
    assert s.withdraw(b) is False
    assert s.end(a) == []  # b never starts
    assert s.idle


def test_end_of_unit_that_never_started_leaves_the_queue() -> None:  # R2
    s = StaScheduler()
    a, b, c = call("a"), call("b"), call("c")
    s.arrive(a)
    s.arrive(b)
    s.arrive(c)
    s.end(b)  # e.g. refused before it ran
    assert started(s.end(a)) == ["c"]


# --- MessagePending for run units during an outgoing call (R16) ------------------------------


def test_waitnoprocess_holds_run_unit_until_call_ends() -> None:  # R16
    s = StaScheduler()
    f = Filter(PENDINGMSG_WAITNOPROCESS)
    s.consult = f
    a, r = run("a"), run("r")  # run work makes a top-level outgoing call
    s.arrive(a)
    w, _ = s.begin_wait(a, WaitKind.CALL)
    assert s.arrive(r) == []
    assert f.asked == [("r", w, False)]
    assert s.queue == [r]
    actions = s.wait_ready(w)  # the outgoing call ends
    assert w.ended
    assert started(actions) == []  # a runs again: r still waits its turn (R2)
    assert started(s.end(a)) == ["r"]
    assert len(f.asked) == 1


def test_waitnoprocess_asked_once_per_wait() -> None:  # R16
    s = StaScheduler()
    f = Filter(PENDINGMSG_WAITNOPROCESS)
    s.consult = f
    a, r1, r2 = call("a"), run("r1"), run("r2")
    s.arrive(a)
    _w, _ = s.begin_wait(a, WaitKind.CALL)
    s.arrive(r1)
    s.arrive(r2)
    assert [x[0] for x in f.asked] == ["r1", "r2"]
    assert s.stack == [a]
    # later pumps during the same wait do not ask again
    s.arrive(run("r3"))
    assert [x[0] for x in f.asked] == ["r1", "r2", "r3"]


def test_held_run_unit_does_not_block_incoming_calls() -> None:  # R16 R2
    s = StaScheduler()
    s.consult = Filter(PENDINGMSG_WAITNOPROCESS)
    a, r, c = call("a"), run("r"), call("c")
    s.arrive(a)
    _w, _ = s.begin_wait(a, WaitKind.CALL)
    s.arrive(r)
    assert acts(s.arrive(c)) == [("start", c)]  # an incoming call is dispatched (re-entrancy)
    assert s.queue == [r]


def test_cancelcall_cancels_outgoing_call_and_holds_unit() -> None:  # R16
    s = StaScheduler()
    f = Filter(PENDINGMSG_CANCELCALL)
    s.consult = f
    a, r = call("a"), run("r")
    s.arrive(a)
    w, _ = s.begin_wait(a, WaitKind.CALL)
    actions = s.arrive(r)
    assert acts(actions) == [("cancel", w)]
    assert s.queue == [r]
    # the runtime fails the outgoing call: the wait is ready; a resumes, then r runs
    assert s.wait_ready(w) == [] and w.ended
    assert started(s.end(a)) == ["r"]


def test_waitdefprocess_admits_run_unit() -> None:  # R16 R2
    s = StaScheduler()
    f = Filter(PENDINGMSG_WAITDEFPROCESS)
    s.consult = f
    a, r = run("a"), run("r")  # run work makes a top-level outgoing call
    s.arrive(a)
    w, _ = s.begin_wait(a, WaitKind.CALL)
    assert acts(s.arrive(r)) == [("start", r)]
    assert f.asked == [("r", w, False)]
    assert s.stack == [a, r]


def test_consult_reports_nested_outgoing_call() -> None:  # R16 (PENDINGTYPE_NESTED)
    s = StaScheduler()
    f = Filter(PENDINGMSG_WAITDEFPROCESS)
    s.consult = f
    a, b, r = call("a"), call("b"), run("r")
    s.arrive(a)
    s.begin_wait(a, WaitKind.OTHER)  # not an outgoing call: nobody is asked
    s.arrive(b)
    assert f.asked == []
    wb, _ = s.begin_wait(b, WaitKind.CALL)
    s.arrive(r)
    assert f.asked == [("r", wb, True)]


def test_outgoing_call_of_an_incoming_call_is_nested() -> None:  # R16 (PENDINGTYPE_NESTED)
    # an STA handling an incoming call (alone on its stack) calls out: that call is nested
    s = StaScheduler()
    f = Filter(PENDINGMSG_WAITDEFPROCESS)
    s.consult = f
    a, r = call("a"), run("r")
    s.arrive(a)
    w, _ = s.begin_wait(a, WaitKind.CALL)
    s.arrive(r)
    assert f.asked == [("r", w, True)]


def test_outgoing_call_of_run_work_is_top_level_however_deep() -> None:  # R16
    # run work nested above a waiting incoming call makes a call of its own: top-level
    s = StaScheduler()
    f = Filter(PENDINGMSG_WAITDEFPROCESS)
    s.consult = f
    a, r1, r2 = call("a"), run("r1"), run("r2")
    s.arrive(a)
    wa, _ = s.begin_wait(a, WaitKind.CALL)
    s.arrive(r1)
    assert s.stack == [a, r1]
    w1, _ = s.begin_wait(r1, WaitKind.CALL)
    s.arrive(r2)
    assert f.asked == [("r1", wa, True), ("r2", w1, False)]


def test_consult_not_asked_for_calls_or_other_waits() -> None:  # R16
    s = StaScheduler()
    f = Filter(PENDINGMSG_WAITNOPROCESS)
    s.consult = f
    a, b, r = call("a"), call("b"), run("r")
    s.arrive(a)
    w, _ = s.begin_wait(a, WaitKind.CALL)
    # incoming calls go through HandleInComingCall instead
    assert acts(s.arrive(b)) == [("start", b)]
    assert f.asked == []
    s.end(b)
    s.wait_ready(w)
    _wo, _ = s.begin_wait(a, WaitKind.OTHER)  # Finish_, Wait, ...: not an outgoing call
    assert acts(s.arrive(r)) == [("start", r)]
    assert f.asked == []


def test_no_filter_admits_run_unit() -> None:  # R16 R2
    s = StaScheduler()
    a, r = call("a"), run("r")
    s.arrive(a)
    s.begin_wait(a, WaitKind.CALL)
    assert acts(s.arrive(r)) == [("start", r)]


def test_start_if_idle_is_arrive_on_an_idle_sta() -> None:  # R2
    s = StaScheduler()
    a, b = call("a"), call("b")
    assert s.start_if_idle(a) is True
    assert s.stack == [a] and s.queue == []
    assert s.start_if_idle(b) is False  # busy: nothing done, arrive queues it
    assert s.stack == [a] and s.queue == []
    assert s.arrive(b) == []
    assert s.queue == [b]
    assert started(s.end(a)) == ["b"]
