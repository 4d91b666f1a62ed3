"""comsim's testing toolkit: virtual time, trace capture and pictures, deadlock detection,
systematic exploration (strategies, recorded schedules, replay, shrinking)."""

from __future__ import annotations

from .._runtime.loop import JumpLimitExceeded
from .._runtime.schedule import Schedule
from ._deadlock import Deadlock, Wait
from ._explore import Exploration, explore
from ._loop import VirtualTimeLoop, run, wait_all_tasks_blocked
from ._runs import Raised
from ._shrink import replay, shrink
from ._trace import Trace, capture_trace

__all__ = [
    "Deadlock",
    "Exploration",
    "JumpLimitExceeded",
    "Raised",
    "Schedule",
    "Trace",
    "VirtualTimeLoop",
    "Wait",
    "capture_trace",
    "explore",
    "replay",
    "run",
    "shrink",
    "wait_all_tasks_blocked",
]
