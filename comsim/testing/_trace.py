"""``capture_trace()``: collect comsim's trace events as dicts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._runtime import trace
from . import _pictures


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

    def to_text(self) -> str:
        """A timeline, one line per event: time (ms), apartment, what happened."""
        return _pictures.to_text(self)

    def to_mermaid(self) -> str:
        """A Mermaid ``sequenceDiagram``: apartments as participants (in order of first
        appearance), requests, replies, cancels and dropped replies as arrows, R29's stages
        as notes over the server."""
        return _pictures.to_mermaid(self)

    def to_chrome_trace(self) -> dict[str, Any]:
        """The Trace Event Format (``{"traceEvents": [...], "displayTimeUnit": "ms"}``) for
        Perfetto and chrome://tracing: a track per apartment, a slice per dispatched call,
        flow arrows for messages, instants for cancels and drops. ``json.dump`` it."""
        return _pictures.to_chrome_trace(self)


@contextmanager
def capture_trace() -> Iterator[Trace]:
    """Collect the trace events of this thread's runtimes, from every one of their apartments,
    while the block runs::

        with comsim.testing.capture_trace() as events:
            ...
        assert events.events("call.cancelled")[0]["stage"] == "queued"

    The capture takes in what runs on the thread that entered it (every apartment of a
    deterministic runtime) and on the apartment threads of the threaded runtimes that thread
    runs; entered by code in an apartment, the thread that runs its runtime. Runtimes that
    other threads run at the same time (``explore`` on a thread pool) are not seen: each run's
    capture is its own.
    """
    sink = Trace()
    trace.add_capture(sink)
    try:
        yield sink
    finally:
        trace.remove_capture(sink)
