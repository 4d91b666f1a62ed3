"""The plugin's failing schedules: shrink a failing test's schedule by running its body again,
and save it where ``--comsim-replay`` can find it (pytest's cache directory); and say when a
replayed test did not follow its schedule."""

from __future__ import annotations

import inspect
import re
import tempfile
import warnings
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from .._runtime.runtime import Runtime
from .._runtime.schedule import Schedule
from ._runs import Raised
from ._shrink import shrink


def save_failing(item: Any, schedule: Schedule, kind: type[BaseException], runs: int,
                 fixture: str) -> tuple[Path, Schedule]:
    """Save ``schedule`` (the failing run's), shrunk in at most ``runs`` runs of the test body
    that still raise ``kind``, as ``<cache>/comsim-schedules/<test id>.json``; gives the path
    and the schedule saved (``schedule`` itself when nothing could be shrunk)."""
    small = schedule
    body = _body(item, fixture)
    if runs > 0 and body is not None and schedule.preemptions:
        name = kind.__name__

        def keep(outcome: Hashable) -> bool:
            return isinstance(outcome, Raised) and outcome.type == name

        try:
            candidate = shrink(body, schedule, keep=keep, max_runs=runs)
        except KeyboardInterrupt:
            raise
        except BaseException:  # the body does not fail again as it did (ValueError), or runs
            candidate = schedule  # into what a run cannot take (SystemExit): keep the run
        if candidate.preemptions < schedule.preemptions:
            small = candidate
    path = _directory(item) / (re.sub(r"[^\w.\[\]-]+", "_", item.nodeid).strip("_") + ".json")
    small.save(path)
    return path, small


def _body(item: Any, fixture: str) -> Any:
    """The test's body as a scenario ``async def (rt)``: the test function called with this
    run's fixture values, a fresh runtime in place of ``fixture``; None for a test that is not
    a plain ``async def`` (Hypothesis's ``@given``, a class's method bound elsewhere)."""
    fn = getattr(item, "obj", None)
    if fn is None or getattr(fn, "hypothesis", None) is not None:
        return None
    if not inspect.iscoroutinefunction(fn):
        return None
    names = [n for n in inspect.signature(fn).parameters if n in item.funcargs]
    values = {n: item.funcargs[n] for n in names}

    async def body(rt: Runtime) -> None:
        await fn(**{**values, fixture: rt})

    body.__qualname__ = getattr(fn, "__qualname__", "test")
    return body


def _directory(item: Any) -> Path:
    cache = getattr(item.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("comsim-schedules"))
    path = Path(tempfile.gettempdir()) / "comsim-schedules"
    path.mkdir(parents=True, exist_ok=True)
    return path


def warn_unless_followed(nodeid: str, schedule: Schedule, ran: Schedule | None) -> None:
    """``--comsim-replay``: warn (as ``replay`` does) when the run did not follow the
    schedule: a decision that did not fit (the run took the default instead), or decisions
    left over when the run ended."""
    wanted = list(schedule.decisions)
    taken = list(ran.decisions[:len(wanted)]) if ran is not None else []
    if taken == wanted:
        return
    pairs = zip(taken, wanted, strict=False)
    step = next((i for i, (a, b) in enumerate(pairs) if a != b), len(taken))
    warnings.warn(f"--comsim-replay: the run of {nodeid} did not follow the schedule from its "
                  f"decision {step} of {len(wanted)} on; the test ran as it went, a decision "
                  f"that did not fit taken as the default. Was the schedule saved for another "
                  f"test, or did the code change since?", RuntimeWarning, stacklevel=1)
