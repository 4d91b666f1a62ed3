"""comsim._core.event: whether a signal whose waiter did not take it goes back (R23, R32)."""

from __future__ import annotations

import itertools

from comsim._core.event import HANDS_BACK, End, EventState


def test_the_table_has_a_row_for_every_kind_of_event_and_end() -> None:  # R23
    bools = (True, False)
    assert set(HANDS_BACK) == set(itertools.product(bools, End, bools))


def test_an_auto_reset_signal_is_consumed_only_by_a_wait_that_succeeds() -> None:  # R23
    assert HANDS_BACK[(True, End.RETURNED, False)] is False
    assert HANDS_BACK[(True, End.ABANDONED, False)] is True  # woken, then cancelled (R32)
    assert HANDS_BACK[(True, End.LATE, False)] is True  # gave up before the wake-up came
    # a Reset since the signal came cleared it; manual-reset: nothing is ever consumed
    assert not any(HANDS_BACK[(True, end, True)] for end in End)
    assert not any(HANDS_BACK[(False, end, r)] for end in End for r in (True, False))


def test_a_signal_handed_back_wakes_the_next_waiter_in_arrival_order() -> None:  # R23
    ev = EventState(auto_reset=True)
    a, b, c = object(), object(), object()
    for w in (a, b, c):
        ev.add_waiter(w)
    assert ev.signal() == [a]
    assert ev.woken_ends(End.ABANDONED, 0) == [b]  # a did not take it: b does
    assert ev.woken_ends(End.LATE, 0) == [c]  # b had given up: c
    assert ev.woken_ends(End.RETURNED, 0) == []  # c took it
    assert ev.is_set is False and ev.waiters == []


def test_a_signal_handed_back_with_nobody_waiting_leaves_the_event_set_once() -> None:  # R23
    ev = EventState(auto_reset=True)
    a = object()
    ev.add_waiter(a)
    assert ev.signal() == [a]
    assert ev.is_set is False
    assert ev.woken_ends(End.ABANDONED, 0) == []
    assert ev.is_set is True
    assert ev.try_wait() is True and ev.try_wait() is False  # one signal, one wait


def test_a_manual_reset_event_hands_nothing_back() -> None:  # R23
    ev = EventState(auto_reset=False)
    a, b = object(), object()
    ev.add_waiter(a)
    ev.add_waiter(b)
    assert ev.signal() == [a, b]
    late = object()
    ev.add_waiter(late)
    for end in End:
        assert ev.woken_ends(end, 0) == []
    assert ev.waiters == [late]  # nobody is woken again, nothing changes
    assert ev.is_set is True
    assert HANDS_BACK[(ev.auto_reset, End.LATE, False)] is False


def test_a_signal_handed_back_after_a_reset_is_dropped() -> None:  # R23
    ev = EventState(auto_reset=True)
    a, b = object(), object()
    ev.add_waiter(a)
    ev.add_waiter(b)
    assert ev.signal() == [a]
    then = ev.resets
    ev.reset()  # after the Signal: the event is clear, whatever a does
    for end in End:
        assert ev.woken_ends(end, then) == []
    assert ev.is_set is False and ev.waiters == [b]
    assert ev.woken_ends(End.ABANDONED, ev.resets) == [b]  # a signal that came after it
