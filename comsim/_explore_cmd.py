"""``comsim explore MODULE:FUNCTION``: run a scenario under many schedules of the deterministic
pump (``comsim.testing.explore``), with progress on a terminal, and print a table of its
outcomes — each with the first seed that reached it and how often — and, for each outcome that
is an exception, its schedule shrunk to the fewest preemptions and saved for replay."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ._core.text import safe_str
from ._load import UsageError, brief, cwd_importable, load_scenario
from .testing import Exploration, Raised, explore
from .testing._explore import MAX_DEPTH, STRATEGIES, save_schedule
from .testing._shrink import shrink_or_keep

DESCRIPTION = (
    "Import MODULE (a dotted name importable from the current directory, or a path to a .py "
    "file) and run its FUNCTION, an `async def scenario(rt)`, once per seed on a fresh "
    "deterministic runtime under a scheduling strategy (comsim.testing.explore). Prints each "
    "distinct outcome with the first seed that reached it and its count; an exception raised "
    "by the scenario is an outcome too, and its schedule is shrunk to the fewest preemptions "
    "that still raise it and saved: replay it with comsim.testing.replay or "
    "pytest --comsim-replay PATH. Exit status: 0, 1 (some run raised), 2 (bad input).")
#: seconds between redraws of the progress bar
REDRAW = 0.1


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("target", metavar="MODULE:FUNCTION",
                    help="e.g. my_scenarios:scenario or path/to/file.py:scenario")
    ap.add_argument("--seeds", "--runs", dest="runs", type=int, default=1000, metavar="N",
                    help="seeds 0..N-1 (default 1000); for exhaustive, the most runs "
                         "(--runs: the same)")
    ap.add_argument("--first-seed", type=int, default=0, metavar="S",
                    help="start at seed S instead (seeds S..S+N-1)")
    ap.add_argument("--strategy", choices=STRATEGIES, default="random",
                    help="random (the seeded pump, default), pct (probabilistic concurrency "
                         "testing, with --depth) or exhaustive (every distinct delivery "
                         "order once)")
    ap.add_argument("--depth", type=int, default=3, help="PCT's bug depth (default 3)")
    ap.add_argument("--workers", type=int, default=1, metavar="W",
                    help="processes to spread the runs over (the result is the same)")
    ap.add_argument("--save-dir", metavar="DIR", default=None,
                    help="where failing schedules are saved (default: comsim-schedules in "
                         "the system's temporary directory)")
    ap.add_argument("--json", metavar="FILE", default=None,
                    help="also write the outcomes as JSON to FILE ('-': standard output, "
                         "instead of the table)")


def run(ns: argparse.Namespace) -> int:
    """The command; its exit status."""
    if ns.runs < 1 or ns.workers < 1 or ns.depth < 1:
        print("comsim explore: error: --seeds, --workers and --depth must be >= 1",
              file=sys.stderr)
        return 2
    if ns.depth > MAX_DEPTH:
        print(f"comsim explore: error: --depth must be at most {MAX_DEPTH}", file=sys.stderr)
        return 2
    if ns.save_dir and Path(ns.save_dir).exists() and not Path(ns.save_dir).is_dir():
        print(f"comsim explore: error: --save-dir {ns.save_dir}: not a directory; give a "
              f"directory (made if missing)", file=sys.stderr)
        return 2
    to_stdout = ns.json == "-"
    console = Console(highlight=False, stderr=to_stdout)
    try:
        with cwd_importable():
            scenario = load_scenario(ns.target)
            found = _explore(scenario, ns, console)
            failures, unsaved = _shrink_failures(scenario, found, ns.save_dir)
    except UsageError as e:
        print(f"comsim explore: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the scenario failing outside its runs (e.g. unpicklable)
        print(f"comsim explore: {ns.target} failed: {brief(e)}", file=sys.stderr)
        return 1
    report = _report(ns, found, failures)
    if not to_stdout:
        _print(console, ns, found, failures)
    if unsaved is not None:
        print(f"comsim explore: error: {unsaved}", file=sys.stderr)
        return 2
    if ns.json is not None:
        text = json.dumps(report, indent=2)
        if to_stdout:
            sys.stdout.write(text + "\n")
        else:
            try:
                Path(ns.json).write_text(text + "\n", encoding="utf-8")
            except OSError as e:
                print(f"comsim explore: error: cannot write {ns.json}: {e.strerror or e}",
                      file=sys.stderr)
                return 2
    return 1 if failures else 0


def _explore(scenario: Any, ns: argparse.Namespace, console: Console) -> Exploration:
    seeds = range(ns.first_seed, ns.first_seed + ns.runs)
    # redrawn from here, without rich's refresh thread: a process of one thread starts the
    # --workers by fork (fast, nothing imported again; comsim.testing._pool)
    with Progress(TextColumn(f"exploring {ns.target}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True, auto_refresh=False,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("runs", total=ns.runs)
        drawn = [0.0]

        def progress(found: Exploration) -> bool:
            bar.update(task, completed=found.runs)
            if time.monotonic() - drawn[0] >= REDRAW:
                drawn[0] = time.monotonic()
                bar.refresh()
            return False

        return explore(scenario, seeds, strategy=ns.strategy, depth=ns.depth,
                       workers=ns.workers, keep_going=True, until=progress)


def _shrink_failures(scenario: Any, found: Exploration, save_dir: str | None
                     ) -> tuple[dict[Raised, tuple[Path | None, int, int]], str | None]:
    """Each raising outcome's first schedule, shrunk and saved: path (None: not saved),
    preemptions before and after; and why the schedules could not be saved (None: saved)."""
    out: dict[Raised, tuple[Path | None, int, int]] = {}
    unsaved: str | None = None
    for outcome in found:
        if type(outcome) is not Raised:
            continue
        first = found.schedules[outcome]
        small = shrink_or_keep(scenario, first, keep=_the_same(outcome))
        path = None
        if unsaved is None:
            try:
                path = save_schedule(scenario, f"seed{found[outcome]}", small, save_dir or None)
            except OSError as e:  # the table is still shown; the exit status says it
                unsaved = (f"cannot save the shrunk schedules to "
                           f"{save_dir or 'the temporary directory'}: {e.strerror or e}")
        out[outcome] = (path, first.preemptions, small.preemptions)
    return out, unsaved


def _the_same(outcome: Raised) -> Any:
    """``keep`` for shrinking: the very outcome of its row (``Raised`` leaves memory addresses
    out), and only a ``Raised``: an int's or a str's ``__eq__`` would answer NotImplemented,
    which is true, and a plain tuple of the same fields is another outcome."""

    def keep(other: Any) -> bool:
        return type(other) is Raised and other == outcome

    return keep


def _label(outcome: Any) -> str:
    if isinstance(outcome, Raised):
        return f"raised {outcome.type}: {outcome.message}"
    return safe_str(outcome)


def _report(ns: argparse.Namespace, found: Exploration,
            failures: dict[Raised, tuple[Path | None, int, int]]) -> dict[str, Any]:
    rows = []
    for outcome, seed in sorted(found.items(), key=lambda kv: kv[1]):
        row: dict[str, Any] = {"outcome": _label(outcome), "first_seed": seed,
                               "count": found.counts[outcome]}
        if outcome in failures:
            path, before, after = failures[outcome]
            row.update(schedule=None if path is None else os.fspath(path), preemptions=after,
                       preemptions_before_shrinking=before)
        rows.append(row)
    return {"target": ns.target, "strategy": ns.strategy, "depth": ns.depth,
            "runs": found.runs, "interleavings": found.interleavings,
            "pct_bound": found.pct_bound, "exhausted": found.exhausted, "outcomes": rows}


def _print(console: Console, ns: argparse.Namespace, found: Exploration,
           failures: dict[Raised, tuple[Path | None, int, int]]) -> None:
    extra = ""
    if found.pct_bound is not None:
        extra = f", PCT bound {found.pct_bound:.2e} per run (depth {ns.depth})"
    if ns.strategy == "exhaustive":
        extra = ", every order run" if found.exhausted else ", budget ran out first"
    table = Table(title=Text(f"{ns.target}: {found.runs} runs ({ns.strategy}), "
                             f"{found.interleavings} distinct delivery orders{extra}"))
    table.add_column("outcome")
    table.add_column("first " + ("run" if ns.strategy == "exhaustive" else "seed"),
                     justify="right")
    table.add_column("runs", justify="right")
    table.add_column("share", justify="right")
    for outcome, seed in sorted(found.items(), key=lambda kv: kv[1]):
        n = found.counts[outcome]
        # an outcome's text is the scenario's, not rich markup ("[/x]" must show as it is)
        table.add_row(Text(_label(outcome)), str(seed), str(n), f"{n / found.runs:.1%}")
    console.print(table)
    for outcome, (path, before, after) in failures.items():
        if path is None:
            where = "not saved"
        else:
            where = (f"saved to {path}\n  replay: comsim.testing.replay(scenario, "
                     f"comsim.testing.Schedule.load({os.fspath(path)!r}))")
        console.print(f"{_label(outcome)}\n  shrunk schedule ({after} preemptions, from "
                      f"{before}) {where}", markup=False, soft_wrap=True)  # paths whole
