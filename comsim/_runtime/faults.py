"""Fault injection (``Runtime.inject_fault``): what a fault is, checked, and which one a server
method meets before it runs (R14 maps what it raises); the timer of a scheduled shutdown
(``Runtime.schedule_shutdown``)."""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable

from .._core.check import BadArgumentType, BadArgumentValue, check_name, check_probability
from .._core.hresult import COMError
from .._core.text import safe_repr
from .futures import call_in_loop

#: one injected fault: method name, apartment name (None: any), error, probability
Fault = tuple[str, str | None, int | BaseException, float]


def checked_fault(method: str, error: int | BaseException, apartment: str | None,
                  probability: float) -> Fault:
    """``inject_fault``'s arguments, checked.

    Raises:
        COMError(E_INVALIDARG), also a TypeError or ValueError: ``method`` or ``apartment``
            not a str, ``error`` neither a failure HRESULT nor an exception, ``probability``
            not in [0, 1].
    """
    api = "inject_fault"
    check_name(api, "method", method)
    if apartment is not None:
        check_name(api, "apartment", apartment)
    if isinstance(error, bool) or not isinstance(error, int | BaseException):
        raise BadArgumentType(f"{api}: error must be an HRESULT (int) or an exception "
                              f"instance, not {safe_repr(error)}")
    if isinstance(error, int) and not -0x8000_0000 <= error <= 0xFFFF_FFFF:
        raise BadArgumentValue(f"{api}: error {safe_repr(error)} is not a 32-bit HRESULT")
    if isinstance(error, int) and 0 <= error <= 0x7FFF_FFFF:  # S_OK, S_FALSE, RPC_S_...
        raise BadArgumentValue(f"{api}: error 0x{error:08X} is a success code, not a failure: "
                               f"a fault must fail the call (an HRESULT with the severity bit "
                               f"set, e.g. hresult.E_FAIL), or be an exception to raise")
    return (method, apartment, error, check_probability(api, "probability", probability))


def fault_for(faults: list[Fault], rng: random.Random, method: str,
              apartment: str) -> BaseException | None:
    """The exception a call of ``method`` in ``apartment`` meets, if a fault matches (one
    with a probability < 1 draws from ``rng``, the runtime's seeded source), or None."""
    for name, apt, error, probability in faults:
        if name != method or (apt is not None and apt != apartment):
            continue
        if probability < 1.0 and rng.random() >= probability:
            continue
        if isinstance(error, BaseException):
            return error
        return COMError(error, f"fault injected into {method}")
    return None


def at_delay(loop: asyncio.AbstractEventLoop, delay: float, fn: Callable[[], object]) -> None:
    """``fn()`` on ``loop`` ``delay`` seconds from now (its clock: virtual on the deterministic
    runtime), in a context of its own (nothing of the caller's apartment). Safe from any
    thread: from another than the loop's, the timer is set on the loop's own (asyncio's timers
    are not thread-safe)."""

    def arm() -> None:
        loop.call_later(delay, fn, context=contextvars.Context())

    try:
        here = asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs here: a plain thread
        here = False
    if here:
        arm()  # at once: the deadline counts from now, with no turn of the loop in between
    else:  # an apartment's thread, on the threaded runtime
        call_in_loop(loop, arm)
