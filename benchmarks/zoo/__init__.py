"""A race zoo: COM scenarios with a planted bug of known depth (issue 12, item 6).

Each scenario is a module-level ``async def scenario(rt: comsim.Runtime)``, importable by
name (so ``explore(workers=N)`` can run it), that raises ``AssertionError("<what went
wrong>")`` when its bug shows and returns a hashable outcome otherwise. The bug never shows
under the default schedule (oldest message first, no deferral: ``comsim.testing.replay(s,
comsim.testing.Schedule([], seed=0))``) and shows under some schedule.

Depth is PCT's (Burckhardt et al., ASPLOS 2010): the number of ordering constraints between
deliveries that must all hold for the bug to show; each docstring names them. ``ZOO`` lists
``(name, scenario, depth)``; ``benchmarks/race_zoo.py`` measures how fast each strategy of
``comsim.testing.explore`` finds each bug.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import comsim

from .async_calls import cancel_before_testcancel, request_overtaken, signal_races_finish
from .calls import lost_update_mta, reentrant_half_update
from .lifetime import git_revoke_races_get, rejection_races_retry, shutdown_races_call
from .protocols import crossed_records, long_phases, nested_record, starved_writer


class Entry(NamedTuple):
    name: str
    scenario: Callable[[comsim.Runtime], Awaitable[Any]]
    depth: int


ZOO: tuple[Entry, ...] = (
    Entry("reentrant_half_update", reentrant_half_update, 1),
    Entry("request_overtaken", request_overtaken, 1),
    Entry("rejection_races_retry", rejection_races_retry, 1),
    Entry("cancel_before_testcancel", cancel_before_testcancel, 2),
    Entry("signal_races_finish", signal_races_finish, 2),
    Entry("lost_update_mta", lost_update_mta, 2),
    Entry("git_revoke_races_get", git_revoke_races_get, 2),
    Entry("shutdown_races_call", shutdown_races_call, 2),
    Entry("nested_record", nested_record, 2),
    Entry("starved_writer", starved_writer, 1),
    Entry("crossed_records", crossed_records, 3),
    Entry("long_phases", long_phases, 3),
)

__all__ = ["ZOO", "Entry"] + [e.name for e in ZOO]
