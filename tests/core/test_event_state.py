"""comsim._core.event.EventState and the filter/retry/run rules added to the core (R2, R16, R23)."""

from __future__ import annotations

from comsim import COMError
from comsim import hresult as hr
from comsim._core import rules
from comsim._core.constants import SERVERCALL_ISHANDLED, SERVERCALL_REJECTED, SERVERCALL_RETRYLATER
from comsim._core.event import HANDS_BACK, End, EventState


def test_event_is_clear_before_the_first_signal() -> None:  # R23
    for auto in (True, False):
        assert EventState(auto).try_wait() is False


def test_auto_reset_wakes_one_waiter_or_stays_set_for_one_wait() -> None:  # R23 StdEvent
    ev = EventState(auto_reset=True)
    a, b = object(), object()
    ev.add_waiter(a)
    ev.add_waiter(b)
    assert ev.signal() == [a]  # one waiter, in arrival order; the signal is consumed
    assert ev.try_wait() is False
    ev.remove_waiter(b)
    assert ev.signal() == []  # nobody waits: it stays set ...
    assert ev.try_wait() is True  # ... for exactly one wait, which resets it
    assert ev.try_wait() is False
    assert HANDS_BACK[(ev.auto_reset, End.LATE, False)] is True  # a lost wake-up: handed back


def test_manual_reset_wakes_everyone_and_stays_set_until_reset() -> None:  # R23
    ev = EventState(auto_reset=False)
    a, b = object(), object()
    ev.add_waiter(a)
    ev.add_waiter(b)
    assert ev.signal() == [a, b]
    assert ev.try_wait() is True and ev.try_wait() is True
    ev.reset()
    assert ev.try_wait() is False
    assert HANDS_BACK[(ev.auto_reset, End.LATE, False)] is False


def test_incoming_filter_is_asked_only_for_sync_calls_on_an_sta_with_a_filter() -> None:  # R16
    assert rules.consults_incoming_filter(True, True, True) is True
    assert rules.consults_incoming_filter(False, True, True) is False
    assert rules.consults_incoming_filter(True, False, True) is False  # Begin_ always dispatched
    assert rules.consults_incoming_filter(True, True, False) is False  # never in the MTA (R3)
    assert rules.filter_rejects(SERVERCALL_ISHANDLED) is False
    assert rules.filter_rejects(SERVERCALL_REJECTED) is True
    assert rules.filter_rejects(SERVERCALL_RETRYLATER) is True


def test_a_caller_without_filter_gives_up_at_once() -> None:  # R16
    assert rules.caller_retry(None) == (False, 0.0)
    assert rules.caller_retry(0) == (True, 0.0)
    assert rules.caller_retry(250) == (True, 0.25)


def test_run_from_inside_runs_directly() -> None:  # R2
    home, other = object(), object()
    assert rules.runs_directly(home, home) is True
    assert rules.runs_directly(other, home) is False
    assert rules.runs_directly(None, home) is False


def test_reply_codes() -> None:  # R14
    assert rules.reply_code(None) == hr.S_OK
    assert rules.reply_code(COMError(hr.E_FAIL)) == hr.E_FAIL
    assert rules.reply_code(ValueError("x")) == hr.RPC_E_SERVERFAULT
    # a COMError carrying a success code cannot make the call succeed (choice)
    assert rules.reply_code(COMError(hr.S_FALSE)) == hr.RPC_E_SERVERFAULT
    assert rules.reply_code(COMError(hr.S_OK)) == hr.RPC_E_SERVERFAULT
