"""structlog events for each step of a call, silent unless someone listens.

Events are emitted while a ``capture_trace()`` is active, or when the application has configured
structlog (``structlog.is_configured()``). Otherwise ``enabled()`` is False and callers skip the
work of building the event.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, Final

import structlog

from .._core import hresult as _hr

_captures: list[list[dict[str, Any]]] = []
#: the active captures, for callers that ask ``enabled()`` written out (``record``)
CAPTURES: Final = _captures
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
    """Whether anyone listens: a ``capture_trace()`` is active, or the application has
    configured structlog."""
    return bool(_captures) or is_configured()


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
        record = {"event": event, **fields}
        for sink in list(_captures):
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
        warnings.warn(f"comsim: structlog raised {exc!r} logging {event!r}; comsim's events "
                      f"are not logged while it fails (further failures are not reported)",
                      RuntimeWarning, stacklevel=3)


def add_capture(sink: list[dict[str, Any]]) -> None:
    _captures.append(sink)


def remove_capture(sink: list[dict[str, Any]]) -> None:
    for i, s in enumerate(_captures):
        if s is sink:
            del _captures[i]
            return
