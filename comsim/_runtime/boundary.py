"""Fault boundaries: where code of the user's runs inside an apartment, and what its failures
become.

Whatever user code raises inside an apartment — server methods (``server.server_task``), message
filters, ``outer.Signal()``, pickling hooks — becomes a COM outcome; it never ends an
apartment's loop or loses a call. That includes ``SystemExit`` and ``KeyboardInterrupt``
(choice): a server method that raises one fails its call with ``RPC_E_SERVERFAULT`` (R14, the
original kept), a hook that raises one is traced and treated as if it had answered the
default. The interrupt is not re-raised to the code that owns the runtime: inside a simulated
process it is one apartment's fault, and COM reports it to the caller.

The synchronous hooks go through ``call_hook``; a method's failure becomes its reply in
``fault_reply`` (``_core.rules.reply_code``), and a server method's cancellation in
``server.server_task`` (``_core.rules.server_cancel_outcome``). Pickling hooks fail their value
with RPC_X_BAD_STUB_DATA in ``wire.pack`` and ``wire.unpack`` (R11), on either side of a call;
a constructor fails ``CoCreateInstance`` with E_FAIL in ``activation._construct`` (R33). The
``AddRef`` and ``Release`` that comsim itself calls on an object (a stub's reference, R7) go
through ``own_ref``: an override that raises is warned about and traced, and comsim goes on
(the count is what the object made of it), so a teardown never stops half-way (R18). A
``CancelledError`` raised by such synchronous code is its own exception like any other: no
cancel of the task can arrive inside it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from .._core import rules
from .._core.hresult import COMError
from .._core.messages import Reply
from .._core.text import describe, safe_repr
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
        trace.emit(event, **fields, exc=safe_repr(exc))
        return default


def fault_reply(obj: Any, method: str, exc: BaseException) -> Reply:
    """R14: the reply for a method of ``obj`` that raised ``exc`` (anything, ``SystemExit``
    included): a COMError's own HRESULT, else RPC_E_SERVERFAULT with the original kept."""
    code = rules.reply_code(exc)
    if isinstance(exc, COMError) and code == exc.hresult:
        return Reply(code, text=exc.text)
    return Reply(code, exc=exc, text=f"{type(obj).__name__}.{method} raised {describe(exc)}")


def own_ref(obj: Any, method: str) -> None:
    """``obj.AddRef()`` or ``obj.Release()`` (``method``) for a reference of comsim's own (a
    stub's, R7). Whatever the object's override raises is traced (``object.refcount_failed``)
    and warned about, never raised: the caller (a proxy's ``Release``, a teardown, a
    ``CoDisconnectObject``) goes on."""
    try:
        getattr(obj, method)()
    except BaseException as exc:  # the boundary: nothing goes through
        name = type(obj).__name__
        text = safe_repr(exc)
        trace.emit("object.refcount_failed", object=name, method=method, exc=text)
        warnings.warn(f"comsim: {name}.{method}() raised {text}; comsim goes on as if it had "
                      f"returned (fix the override: {method} must not raise)", RuntimeWarning,
                      stacklevel=2)
