"""Apartment rules: who may use what, and what the message filter is asked (R1-R4, R12, R16).

Every function takes plain facts and returns an HRESULT or a constant; none has side effects.
"""

from __future__ import annotations

from . import hresult as hr
from .constants import (
    CALLTYPE_NESTED,
    CALLTYPE_TOPLEVEL,
    CALLTYPE_TOPLEVEL_CALLPENDING,
    PENDINGTYPE_NESTED,
    PENDINGTYPE_TOPLEVEL,
    ApartmentType,
)


def check_in_apartment(current: object | None) -> int:
    """R4: a COM API that needs an apartment, called from code in none."""
    return hr.CO_E_NOTINITIALIZED if current is None else hr.S_OK


def check_proxy_use(current: object | None, home: object, home_alive: bool) -> int:
    """R12, in its order: no apartment; the proxy's apartment has gone; the wrong apartment."""
    if current is None:
        return hr.CO_E_NOTINITIALIZED
    if not home_alive:
        return hr.CO_E_OBJNOTCONNECTED
    if current is not home:
        return hr.RPC_E_WRONG_THREAD
    return hr.S_OK


def check_message_filter_registration(kind: ApartmentType | None) -> int:
    """R16: message filters are for STAs only."""
    if kind is None or not kind.is_sta:
        return hr.CO_E_NOT_SUPPORTED
    return hr.S_OK


def incoming_call_type(sta_idle: bool, waiting_causality: int | None, causality_id: int) -> int:
    """R16: ``call_type`` for HandleInComingCall."""
    if sta_idle:
        return CALLTYPE_TOPLEVEL
    if waiting_causality is not None and waiting_causality == causality_id:
        return CALLTYPE_NESTED
    return CALLTYPE_TOPLEVEL_CALLPENDING


def pending_type(nested: bool) -> int:
    """R16: ``pending_type`` for MessagePending."""
    return PENDINGTYPE_NESTED if nested else PENDINGTYPE_TOPLEVEL


def retry_decision(answer: int) -> tuple[bool, float]:
    """R16: RetryRejectedCall's answer -> (retry?, delay in seconds).

    Negative gives up; 0-99 retries now; >= 100 retries after that many milliseconds.
    """
    if answer < 0:
        return False, 0.0
    if answer < 100:
        return True, 0.0
    return True, answer / 1000.0


def cancel_timeout(seconds: float | int) -> float | None:
    """R28: Cancel's grace period in seconds, None for no limit; ValueError when negative
    (the runtime turns it into E_INVALIDARG)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("seconds must be an int or a float")
    if seconds == -1 or seconds == 0xFFFFFFFF:
        return None
    if seconds < 0:
        raise ValueError("seconds must be >= 0, -1 or RPC_C_CANCEL_INFINITE_TIMEOUT")
    return float(seconds)


def wait_timeout(ms: int) -> float | None:
    """R23: ISynchronize.Wait's time-out in seconds, None for INFINITE."""
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        raise ValueError("milliseconds must be an int")
    if ms == 0xFFFFFFFF or ms == -1:
        return None
    if ms < 0:
        raise ValueError("milliseconds must be >= 0 or INFINITE")
    return ms / 1000.0


class CancelCounter:
    """R31: CoEnableCallCancellation / CoDisableCallCancellation per simulated thread."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def enable(self, thread_id: int) -> int:
        self.counts[thread_id] = self.counts.get(thread_id, 0) + 1
        return hr.S_OK

    def disable(self, thread_id: int) -> int:
        n = self.counts.get(thread_id, 0)
        if n <= 0:
            return hr.CO_E_CANCEL_DISABLED
        self.counts[thread_id] = n - 1
        return hr.S_OK

    def enabled(self, thread_id: int) -> bool:
        return self.counts.get(thread_id, 0) > 0


def cancel_call_status(found: bool, cancellable: bool, already_cancelled: bool) -> int:
    """R31: CoCancelCall before any cancel is sent (S_OK means: go ahead)."""
    if not found:
        return hr.E_NOINTERFACE
    if not cancellable:
        return hr.CO_E_CANCEL_DISABLED
    if already_cancelled:
        return hr.RPC_E_CALL_CANCELED
    return hr.S_OK
