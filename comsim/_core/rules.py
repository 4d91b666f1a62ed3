"""Apartment rules: who may use what, and what the message filter is asked (R1-R4, R12, R16).

Every function takes plain facts and returns an HRESULT or a constant; none has side effects.
"""

from __future__ import annotations

import math

from . import hresult as hr
from .constants import (
    CALLTYPE_NESTED,
    CALLTYPE_TOPLEVEL,
    CALLTYPE_TOPLEVEL_CALLPENDING,
    PENDINGTYPE_NESTED,
    PENDINGTYPE_TOPLEVEL,
    SERVERCALL_ISHANDLED,
    ApartmentType,
)
from .text import safe_repr


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

    Negative gives up; 0-99 retries now; >= 100 retries after that many milliseconds. The
    answer is COM's DWORD: ``0xFFFFFFFF`` is its -1 and gives up, and so does a number no DWORD
    holds (beyond 32 bits).
    """
    if answer < 0 or answer >= 0xFFFFFFFF:
        return False, 0.0
    if answer < 100:
        return True, 0.0
    return True, answer / 1000.0


def cancel_timeout(seconds: float | int) -> float | None:
    """R28: Cancel's grace period in seconds, None for no limit (-1,
    RPC_C_CANCEL_INFINITE_TIMEOUT or +inf); ValueError when negative or NaN (the runtime turns
    it into E_INVALIDARG)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("seconds must be an int or a float")
    if seconds == -1 or seconds == 0xFFFFFFFF or seconds == math.inf:
        return None
    if not seconds >= 0:  # negative, or NaN
        raise ValueError("seconds must be >= 0, -1 or RPC_C_CANCEL_INFINITE_TIMEOUT")
    return float(seconds)


def wait_timeout(ms: int) -> float | None:
    """R23: ISynchronize.Wait's time-out in seconds, None for INFINITE (or -1, or +inf);
    ValueError when negative or NaN."""
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        raise ValueError("milliseconds must be an int")
    if ms == 0xFFFFFFFF or ms == -1 or ms == math.inf:
        return None
    if not ms >= 0:  # negative, or NaN
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


def sta_kind(first: bool) -> ApartmentType:
    """R4: the first STA of a runtime is the main STA."""
    return ApartmentType.MAINSTA if first else ApartmentType.STA


def call_target_status(connected: bool, disconnecting: bool, server_alive: bool) -> int:
    """R17, R18: may a call be sent to this object now? S_OK, or what the call fails with."""
    if disconnecting:
        return hr.CO_E_OBJNOTCONNECTED
    if not connected or not server_alive:
        return hr.RPC_E_DISCONNECTED
    return hr.S_OK


def unmarshal_status(connected: bool, server_alive: bool, implements: bool) -> int:
    """R9, R17, R18: connecting to an object from marshal data or the GIT."""
    if not connected or not server_alive:
        return hr.CO_E_OBJNOTCONNECTED
    if not implements:
        return hr.E_NOINTERFACE
    return hr.S_OK


def direct_use_status(current: object | None, home: object, free_threaded: bool) -> int:
    """R1: only code in an object's apartment uses the object itself (marshals it, registers
    it in the GIT, passes it in a value); a free-threaded object is anyone's."""
    if free_threaded or current is home:
        return hr.S_OK
    return hr.CO_E_NOTINITIALIZED if current is None else hr.RPC_E_WRONG_THREAD


def disconnect_status(current: object | None, home: object) -> int:
    """R17: CoDisconnectObject only from the object's apartment."""
    if current is None:
        return hr.CO_E_NOTINITIALIZED
    return hr.S_OK if current is home else hr.RPC_E_WRONG_THREAD


def create_call_status(is_async_interface: bool, implements_sync: bool) -> int:
    """R19: ICallFactory.CreateCall."""
    if not is_async_interface or not implements_sync:
        return hr.E_NOINTERFACE
    return hr.S_OK


def finish_status(idle: bool, begun_method: str | None, method: str) -> int:
    """R22 (choice): Finish_ of another method than the one begun fails and changes nothing."""
    if not idle and begun_method is not None and begun_method != method:
        return hr.E_INVALIDARG
    return hr.S_OK


def reply_code(exc: BaseException | None) -> int:
    """R14: what a server method's outcome sends back: S_OK, a COMError's own HRESULT, or
    RPC_E_SERVERFAULT for any other exception — a COMError carrying a success code too
    (choice): raised, it cannot make the call succeed, and a caller told "S_OK" would lose
    the fault."""
    if exc is None:
        return hr.S_OK
    code = getattr(exc, "hresult", None)
    if isinstance(exc, hr.COMError) and isinstance(code, int) and code < 0:
        return code
    return hr.RPC_E_SERVERFAULT


CANCEL_POLICIES = ("interrupt", "cooperative")


def interrupts(policy: str) -> bool:
    """R30: does a cancel interrupt the server method (task cancellation), or only show in
    CoTestCancel? ValueError for an unknown policy."""
    if policy == "interrupt":
        return True
    if policy == "cooperative":
        return False
    raise ValueError(f"cancel_policy must be one of {CANCEL_POLICIES}, not {safe_repr(policy)}")


def test_cancel_status(in_call: bool, cancelled: bool) -> int:
    """R30: CoTestCancel (and a server call object's TestCancel)."""
    if not in_call:
        return hr.RPC_E_CALL_COMPLETE
    return hr.RPC_E_CALL_CANCELED if cancelled else hr.RPC_S_CALLPENDING


def shutdown_allowed(kind: ApartmentType, runtime_closing: bool) -> int:
    """R18: the MTA shuts down only with its runtime; so does the NA (R5)."""
    if (kind is ApartmentType.MTA or kind is ApartmentType.NA) and not runtime_closing:
        return hr.E_FAIL
    return hr.S_OK


#: R18: a teardown cancels the apartment's tasks and waits for them to end, then cancels the
#: tasks that appeared meanwhile, for at most TEARDOWN_ROUNDS rounds. A task still running
#: TEARDOWN_GRACE seconds (the runtime's clock) after its cancel swallowed it: it is cancelled
#: again, at most TEARDOWN_STALLS times. Then what still runs is left behind, a call it still
#: runs is answered RPC_E_DISCONNECTED, and the teardown ends (a shutdown never hangs on a task
#: that will not end, nor does its caller).
TEARDOWN_ROUNDS = 100
TEARDOWN_GRACE = 0.25
TEARDOWN_STALLS = 3


def teardown_cancels_again(rounds: int, stalls: int) -> bool:
    """R18: whether a teardown that has run ``rounds`` rounds, ``stalls`` of them ended by the
    grace period, cancels the tasks still running once more (else it leaves them behind)."""
    return rounds < TEARDOWN_ROUNDS and stalls <= TEARDOWN_STALLS


def consults_incoming_filter(has_filter: bool, synchronous: bool, is_sta: bool) -> bool:
    """R16: HandleInComingCall is asked only on an STA with a filter, and only for synchronous
    calls (asynchronous calls are dispatched whatever it would answer)."""
    return has_filter and synchronous and is_sta


def filter_rejects(answer: int) -> bool:
    """R16: anything but SERVERCALL_ISHANDLED rejects the call (REJECTED or RETRYLATER)."""
    return answer != SERVERCALL_ISHANDLED


def caller_retry(answer: int | None) -> tuple[bool, float]:
    """R16: the caller's RetryRejectedCall answer (None: the caller has no filter, which gives
    up at once) -> (retry?, delay in seconds)."""
    return retry_decision(-1 if answer is None else answer)


def runs_directly(current: object | None, target: object) -> bool:
    """R2: Apartment.run from inside the same apartment runs the function directly."""
    return current is target


def server_cancel_outcome(interrupted: bool, shutting_down: bool) -> int:
    """R14, R18, R30: what a server method that ended in ``CancelledError`` sends back.

    ``RPC_E_CALL_CANCELED`` when a client's cancel interrupted it (R30), ``RPC_E_DISCONNECTED``
    when its apartment shuts down (R18), and otherwise the method raised ``CancelledError``
    itself, which is an exception like any other: ``RPC_E_SERVERFAULT`` (R14)."""
    if shutting_down:
        return hr.RPC_E_DISCONNECTED
    if interrupted:
        return hr.RPC_E_CALL_CANCELED
    return hr.RPC_E_SERVERFAULT
