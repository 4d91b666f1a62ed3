"""Apartment rules as pure functions (comsim._core.rules): R4, R12, R16, R23, R28, R31.

Synchronous unit tests; no event loop.
"""

from __future__ import annotations

import itertools

import pytest

import comsim
from comsim._core import constants as c
from comsim._core import hresult as hr
from comsim._core import rules
from comsim._core.constants import ApartmentType

# --- R4 ----------------------------------------------------------------------------------------


def test_no_apartment_is_notinitialized() -> None:  # R4
    assert rules.check_in_apartment(None) == hr.CO_E_NOTINITIALIZED


def test_in_apartment_is_ok() -> None:  # R4
    assert rules.check_in_apartment(object()) == hr.S_OK


def test_apartment_types() -> None:  # R4
    assert ApartmentType.STA.is_sta and ApartmentType.MAINSTA.is_sta
    assert not ApartmentType.MTA.is_sta


# --- R12: the order of checks ----------------------------------------------------------------

HOME, OTHER = object(), object()


@pytest.mark.parametrize(
    ("current", "alive"), list(itertools.product([None, HOME, OTHER], [True, False]))
)
def test_proxy_use_order(current: object | None, alive: bool) -> None:  # R12
    got = rules.check_proxy_use(current, HOME, alive)
    if current is None:
        expected = hr.CO_E_NOTINITIALIZED  # first: no apartment
    elif not alive:
        expected = hr.CO_E_OBJNOTCONNECTED  # second: the proxy's apartment has gone (R18)
    elif current is not HOME:
        expected = hr.RPC_E_WRONG_THREAD  # third: wrong apartment
    else:
        expected = hr.S_OK
    assert got == expected


def test_proxy_use_dead_home_beats_wrong_thread() -> None:  # R12
    assert rules.check_proxy_use(OTHER, HOME, False) == hr.CO_E_OBJNOTCONNECTED


def test_proxy_use_no_apartment_beats_everything() -> None:  # R12
    assert rules.check_proxy_use(None, HOME, False) == hr.CO_E_NOTINITIALIZED


# --- R16 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (None, hr.CO_E_NOT_SUPPORTED),
        (ApartmentType.MTA, hr.CO_E_NOT_SUPPORTED),
        (ApartmentType.STA, hr.S_OK),
        (ApartmentType.MAINSTA, hr.S_OK),
    ],
)
def test_message_filter_registration(kind: ApartmentType | None, expected: int) -> None:  # R16
    assert rules.check_message_filter_registration(kind) == expected


def test_constant_values() -> None:  # R16 R23 R28
    assert (c.SERVERCALL_ISHANDLED, c.SERVERCALL_REJECTED, c.SERVERCALL_RETRYLATER) == (0, 1, 2)
    assert (c.PENDINGMSG_CANCELCALL, c.PENDINGMSG_WAITNOPROCESS, c.PENDINGMSG_WAITDEFPROCESS) == (
        0,
        1,
        2,
    )
    assert (c.PENDINGTYPE_TOPLEVEL, c.PENDINGTYPE_NESTED) == (1, 2)
    assert (
        c.CALLTYPE_TOPLEVEL,
        c.CALLTYPE_NESTED,
        c.CALLTYPE_ASYNC,
        c.CALLTYPE_TOPLEVEL_CALLPENDING,
        c.CALLTYPE_ASYNC_CALLPENDING,
    ) == (1, 2, 3, 4, 5)
    assert c.INFINITE == c.RPC_C_CANCEL_INFINITE_TIMEOUT == 0xFFFFFFFF
    # the public names are the same values
    assert comsim.INFINITE == comsim.RPC_C_CANCEL_INFINITE_TIMEOUT == 0xFFFFFFFF
    assert comsim.PENDINGMSG_CANCELCALL == 0
    assert comsim.CALLTYPE_TOPLEVEL_CALLPENDING == 4
    assert comsim.SERVERCALL_RETRYLATER == 2


def test_call_type_idle_is_toplevel() -> None:  # R16
    assert rules.incoming_call_type(True, None, 7) == c.CALLTYPE_TOPLEVEL
    # idle wins even if a stale causality id were passed
    assert rules.incoming_call_type(True, 7, 7) == c.CALLTYPE_TOPLEVEL


def test_call_type_same_causality_is_nested() -> None:  # R16
    assert rules.incoming_call_type(False, 7, 7) == c.CALLTYPE_NESTED


@pytest.mark.parametrize("waiting", [None, 8])
def test_call_type_other_causality_is_toplevel_callpending(waiting: int | None) -> None:  # R16
    assert rules.incoming_call_type(False, waiting, 7) == c.CALLTYPE_TOPLEVEL_CALLPENDING


def test_call_type_causality_zero_is_not_none() -> None:  # R16: a falsy id is still an id
    assert rules.incoming_call_type(False, 0, 0) == c.CALLTYPE_NESTED


def test_pending_type() -> None:  # R16
    assert rules.pending_type(False) == c.PENDINGTYPE_TOPLEVEL
    assert rules.pending_type(True) == c.PENDINGTYPE_NESTED


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (-1, (False, 0.0)),
        (-1000, (False, 0.0)),
        (0, (True, 0.0)),
        (1, (True, 0.0)),
        (99, (True, 0.0)),
        (100, (True, 0.1)),
        (250, (True, 0.25)),
        (1500, (True, 1.5)),
        (10**6, (True, 1000.0)),  # no retry limit
        (0xFFFFFFFE, (True, 0xFFFFFFFE / 1000)),  # the longest delay a DWORD holds
        (0xFFFFFFFF, (False, 0.0)),  # COM's DWORD -1
        (2**32, (False, 0.0)),  # no DWORD holds it
        (10**400, (False, 0.0)),  # (before: OverflowError)
    ],
)
def test_retry_decision(answer: int, expected: tuple[bool, float]) -> None:  # R16
    retry, delay = rules.retry_decision(answer)
    assert retry is expected[0]
    assert delay == pytest.approx(expected[1])


# --- R28: Cancel's grace period ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, 0.0), (0.0, 0.0), (1, 1.0), (5, 5.0), (0.25, 0.25), (3600, 3600.0)],
)
def test_cancel_timeout_finite(seconds: float, expected: float) -> None:  # R28
    got = rules.cancel_timeout(seconds)
    assert isinstance(got, float)
    assert got == expected


@pytest.mark.parametrize("seconds", [-1, 0xFFFFFFFF, c.RPC_C_CANCEL_INFINITE_TIMEOUT, -1.0])
def test_cancel_timeout_infinite(seconds: float) -> None:  # R28
    assert rules.cancel_timeout(seconds) is None


@pytest.mark.parametrize("seconds", [-2, -0.5, -100])
def test_cancel_timeout_negative_rejected(seconds: float) -> None:  # R28
    with pytest.raises(ValueError):
        rules.cancel_timeout(seconds)


@pytest.mark.parametrize("seconds", [True, "1", None, 1j])
def test_cancel_timeout_not_a_number_rejected(seconds: object) -> None:  # R28: int or float
    with pytest.raises(ValueError):
        rules.cancel_timeout(seconds)  # type: ignore[arg-type]


# --- R23: ISynchronize.Wait's time-out ---------------------------------------------------------


@pytest.mark.parametrize(("ms", "expected"), [(0, 0.0), (1, 0.001), (100, 0.1), (1500, 1.5)])
def test_wait_timeout_finite(ms: int, expected: float) -> None:  # R23
    assert rules.wait_timeout(ms) == pytest.approx(expected)


@pytest.mark.parametrize("ms", [c.INFINITE, 0xFFFFFFFF, -1])
def test_wait_timeout_infinite(ms: int) -> None:  # R23
    assert rules.wait_timeout(ms) is None


@pytest.mark.parametrize("ms", [-2, True, "10", None])
def test_wait_timeout_rejects_bad_values(ms: object) -> None:  # R23
    with pytest.raises(ValueError):
        rules.wait_timeout(ms)  # type: ignore[arg-type]


# --- R31: CoEnableCallCancellation / CoDisableCallCancellation, CoCancelCall ------------------


def test_cancel_counter_disable_at_zero() -> None:  # R31
    k = rules.CancelCounter()
    assert not k.enabled(1)
    assert k.disable(1) == hr.CO_E_CANCEL_DISABLED
    assert not k.enabled(1)
    # the failed disable did not push the count below zero: one enable enables
    assert k.enable(1) == hr.S_OK
    assert k.enabled(1)


def test_cancel_counter_counts_up_and_down() -> None:  # R31
    k = rules.CancelCounter()
    assert k.enable(1) == hr.S_OK
    assert k.enable(1) == hr.S_OK
    assert k.disable(1) == hr.S_OK
    assert k.enabled(1)
    assert k.disable(1) == hr.S_OK
    assert not k.enabled(1)
    assert k.disable(1) == hr.CO_E_CANCEL_DISABLED


def test_cancel_counter_per_thread() -> None:  # R31
    k = rules.CancelCounter()
    k.enable(1)
    assert k.enabled(1)
    assert not k.enabled(2)
    assert k.disable(2) == hr.CO_E_CANCEL_DISABLED
    assert k.enabled(1)


@pytest.mark.parametrize(
    ("found", "cancellable", "already"), list(itertools.product([True, False], repeat=3))
)
def test_cancel_call_status_order(found: bool, cancellable: bool, already: bool) -> None:  # R31
    got = rules.cancel_call_status(found, cancellable, already)
    if not found:
        expected = hr.E_NOINTERFACE
    elif not cancellable:
        expected = hr.CO_E_CANCEL_DISABLED
    elif already:
        expected = hr.RPC_E_CALL_CANCELED
    else:
        expected = hr.S_OK
    assert got == expected
