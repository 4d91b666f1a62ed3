"""structlog events for each step of a call, silent unless someone listens.

Events are emitted while a ``capture_trace()`` is active, or when the application has configured
structlog (``structlog.is_configured()``). Otherwise ``enabled()`` is False and callers skip the
work of building the event.

A capture is scoped to a thread, its root: the thread that entered it, or, entered by code on a
threaded runtime's apartment thread, the thread that entered that runtime (where its host loop
runs). It takes in the events emitted on its root and on the apartment threads of the runtimes
its root entered, and nothing else: runs in other threads at the same time (``explore`` on a
thread pool) have captures of their own. An event emitted on a thread no live runtime knows (a
plain thread, R31) reaches the captures when they all have one root, and none when captures of
several roots are active (it cannot be placed).
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any, Final

import structlog

from .._core import hresult as _hr
from .._core.text import safe_repr
from .context import LIVE_RUNTIMES

_Sink = list[dict[str, Any]]
_captures: list[_Sink] = []
#: the active captures of every thread, for callers that ask ``enabled()`` written out
#: (``record``): empty, nobody captures anywhere, and no more need be asked
CAPTURES: Final = _captures
#: the active captures by root thread (``threading.get_ident``); each list is replaced, never
#: changed, so that ``emit`` reads one without a lock
_by_root: dict[int, list[_Sink]] = {}
_lock = threading.Lock()
#: a threaded runtime's apartment thread, by ident: (its Thread, its runtime's root thread)
_apartment_roots: dict[int, tuple[threading.Thread, int]] = {}
_get_ident = threading.get_ident
#: ``structlog.is_configured`` without a Python frame (asked once per call): a read of the
#: flag that function returns, where this structlog keeps it
is_configured: Callable[[], bool] = structlog.is_configured
_config = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
if isinstance(getattr(_config, "is_configured", None), bool):
    is_configured = functools.partial(getattr, _config, "is_configured")
_logger: Any = None
#: ``hresult.name`` of the codes emitted so far (the same few, event after event)
_names: dict[int, str] = {}


def enabled() -> bool:
    """Whether anyone listens: a ``capture_trace()`` whose scope this thread is in is active,
    or the application has configured structlog. When nobody captures anywhere, one read of a
    list, as before scopes."""
    if not _captures:
        return is_configured()
    return bool(_sinks_here()) or is_configured()


def emit(event: str, **fields: Any) -> None:
    """Send one event to every active capture and, if configured, to structlog. An event with
    an ``hresult`` also gets its COM name as ``hresult_name`` (e.g. ``RPC_E_CALL_CANCELED``);
    callers only reach here when ``enabled()``, so the name costs nothing when nobody listens."""
    code = fields.get("hresult")
    if isinstance(code, int) and "hresult_name" not in fields:
        name = _names.get(code)
        if name is None:
            name = _hr.name(code)
            if len(_names) < 1024:
                _names[code] = name
        fields["hresult_name"] = name
    if _captures:
        sinks = _sinks_here()
        if sinks:
            record = {"event": event, **fields}
            for sink in sinks:
                sink.append(record)
    if is_configured():
        global _logger
        if _logger is None:
            _logger = structlog.get_logger("comsim")
        try:
            _logger.info(event, **fields)
        except Exception as exc:  # the application's logging: it must not break a call's step
            _logging_failed(event, exc)


_warned: list[bool] = []


def _logging_failed(event: str, exc: Exception) -> None:
    """The application's structlog configuration raised: warned once (as ``logging``'s
    ``handleError`` reports a failing handler), the event still captured, comsim goes on."""
    if not _warned:
        _warned.append(True)
        warnings.warn(f"comsim: structlog raised {safe_repr(exc)} logging {event!r}; comsim's "
                      f"events are not logged while it fails (further failures are not "
                      f"reported)",
                      RuntimeWarning, stacklevel=3)


# ------------------------------------------------------------------ scopes
def add_capture(sink: _Sink) -> None:
    """``sink`` takes in the events of this thread's scope (the module's docstring) until
    ``remove_capture(sink)``."""
    ident = _get_ident()
    root = _apartment_root(ident)
    if root is None:
        root = ident
    with _lock:
        _by_root[root] = [*_by_root.get(root, ()), sink]
        _captures.append(sink)


def remove_capture(sink: _Sink) -> None:
    with _lock:
        for i, s in enumerate(_captures):
            if s is sink:
                del _captures[i]
                break
        for root, sinks in list(_by_root.items()):
            if any(s is sink for s in sinks):
                rest = [s for s in sinks if s is not sink]
                if rest:
                    _by_root[root] = rest
                else:
                    del _by_root[root]
                break
        if not _captures:
            _apartment_roots.clear()


def _sinks_here() -> list[_Sink]:
    """The captures whose scope the running thread is in (asked only while some capture is
    active somewhere)."""
    ident = _get_ident()
    sinks = _by_root.get(ident)
    if sinks is not None:  # the capturing thread itself (every event of a deterministic run)
        return sinks
    root = _apartment_root(ident)
    if root is not None:
        return _by_root.get(root, [])
    for rt in list(LIVE_RUNTIMES):
        if rt._host_thread == ident:
            return []  # a runtime run here, and nobody here captures
    # a thread no live runtime knows (a plain thread cancelling a call, R31): its events go
    # to the captures if they all have one root, else nowhere (they may be anyone's)
    roots = list(_by_root.values())
    return roots[0] if len(roots) == 1 else []


def _apartment_root(ident: int) -> int | None:
    """The thread that runs the live runtime whose apartment thread ``ident`` (the running
    thread) is, on the threaded runtime; None: it is no apartment thread."""
    current = threading.current_thread()
    known = _apartment_roots.get(ident)
    if known is not None and known[0] is current:
        return known[1]
    for rt in list(LIVE_RUNTIMES):
        for apt in list(rt._apartments.values()):
            if apt._thread is current:  # (an ident may be reused once a thread has ended)
                host: int = rt._host_thread  # (set on entering, before it is live)
                if len(_apartment_roots) > 1024:
                    _apartment_roots.clear()
                _apartment_roots[ident] = (current, host)
                return host
    return None
