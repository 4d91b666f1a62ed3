"""``capture_trace()``: collect comsim's trace events as dicts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._runtime import trace


class Trace(list[dict[str, Any]]):
    """The captured events, in order; helpers to pick them out."""

    def events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Events named ``name`` (any if None) whose fields equal ``match``."""
        return [
            e for e in self
            if (name is None or e["event"] == name)
            and all(e.get(k) == v for k, v in match.items())
        ]

    def names(self, **match: Any) -> list[str]:
        return [e["event"] for e in self.events(None, **match)]


@contextmanager
def capture_trace() -> Iterator[Trace]:
    """Collect every trace event from every apartment while the block runs::

        with comsim.testing.capture_trace() as events:
            ...
        assert events.events("call.cancelled")[0]["stage"] == "queued"
    """
    sink = Trace()
    trace.add_capture(sink)
    try:
        yield sink
    finally:
        trace.remove_capture(sink)
