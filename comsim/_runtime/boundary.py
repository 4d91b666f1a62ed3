"""Fault boundaries: where code of the user's runs inside an apartment, and what its failures
become.

Whatever user code raises inside an apartment — server methods (``calls.server_task``), message
filters, ``outer.Signal()``, pickling hooks — becomes a COM outcome; it never ends an
apartment's loop or loses a call. That includes ``SystemExit`` and ``KeyboardInterrupt``
(choice): a server method that raises one fails its call with ``RPC_E_SERVERFAULT`` (R14, the
original kept), a hook that raises one is traced and treated as if it had answered the
default. The interrupt is not re-raised to the code that owns the runtime: inside a simulated
process it is one apartment's fault, and COM reports it to the caller.

The synchronous hooks go through ``call_hook``; the server method's outcome is mapped in
``calls.server_task`` by ``_core.rules.reply_code`` and ``server_cancel_outcome``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from . import trace

T = TypeVar("T")


def call_hook(event: str, fields: dict[str, Any], default: T, fn: Callable[..., Any],
              *args: Any) -> Any:
    """``fn(*args)``, or ``default`` if it raises anything at all; the failure is traced as
    ``event`` with ``fields`` and ``exc``. (``GeneratorExit`` cannot reach a synchronous hook,
    and a ``CancelledError`` raised by one is its own exception, not a cancel of the caller.)"""
    try:
        return fn(*args)
    except BaseException as exc:  # the boundary: nothing goes through
        trace.emit(event, **fields, exc=repr(exc))
        return default
