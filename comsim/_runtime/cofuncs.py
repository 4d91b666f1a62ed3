"""The ``Co*`` functions about cancellation and threads (R30, R31)."""

from __future__ import annotations

from typing import Any

from .._core import hresult as hr
from .._core import rules
from .._core.callobj import State
from .._core.check import BadArgumentType
from .._core.hresult import COMError
from .._core.text import safe_repr
from .cancel import cancel_call
from .context import (
    WHERE,
    current_runtime,
    outside_thread_id,
    runtime_with_thread,
)
from .record import ClientCall


# --------------------------------------------------------------------------- free functions
def CoTestCancel() -> int:
    """Inside a server method (and tasks it spawns): RPC_E_CALL_CANCELED once the client
    cancelled, else RPC_S_CALLPENDING; outside any incoming call RPC_E_CALL_COMPLETE (R30)."""
    w = WHERE.get()
    call = w.incoming if w is not None else None
    return rules.test_cancel_status(call is not None, call is not None and call.server_cancelled)


def current_thread_id() -> int:
    """The caller's simulated thread id (R31)."""
    w = WHERE.get()
    return w.thread_id if w is not None else outside_thread_id()


def _cancel_counter() -> Any:
    rt = current_runtime()
    if rt is None:
        from .._core.rules import CancelCounter

        global _OUTSIDE_COUNTER
        if _OUTSIDE_COUNTER is None:
            _OUTSIDE_COUNTER = CancelCounter()
        return _OUTSIDE_COUNTER
    return rt._cancel_counts


_OUTSIDE_COUNTER: Any = None


def CoEnableCallCancellation() -> int:
    """Make this simulated thread's later synchronous calls cancellable (counts up, R31)."""
    return int(_cancel_counter().enable(current_thread_id()))


def CoDisableCallCancellation() -> int:
    """Count down; CO_E_CANCEL_DISABLED when the count is already zero (R31)."""
    return int(_cancel_counter().disable(current_thread_id()))


async def CoCancelCall(thread_id: int, seconds: float) -> int:
    """Cancel the innermost pending synchronous call of simulated thread ``thread_id`` (0: the
    caller's own) with Cancel's grace rule (R28, R31). Gives S_OK, E_NOINTERFACE (no such call),
    CO_E_CANCEL_DISABLED, RPC_E_CALL_CANCELED or RPC_E_CALL_COMPLETE.

    Raises:
        COMError(E_INVALIDARG): a negative time-out.
    """
    try:
        timeout = rules.cancel_timeout(seconds)
    except ValueError as exc:
        raise COMError(hr.E_INVALIDARG, f"CoCancelCall(..., {safe_repr(seconds)}): {exc}") from None
    if isinstance(thread_id, bool) or not isinstance(thread_id, int) or thread_id < 0:
        raise BadArgumentType(f"CoCancelCall({safe_repr(thread_id)}, ...): thread_id must be a "
                              "simulated thread id (int >= 0; 0 for the caller's own)")
    tid = thread_id or current_thread_id()
    rt = runtime_with_thread(tid)
    stack = rt._outgoing.get(tid) if rt is not None else None
    call: ClientCall | None = stack[-1] if stack else None
    status = rules.cancel_call_status(
        call is not None,
        call is not None and call.cancellable,
        call is not None and call.machine.state in (State.CANCELLING, State.CANCELLED),
    )
    if status or call is None:
        return status
    w = WHERE.get()
    return await cancel_call(w.apartment if w is not None else None, call, timeout)
