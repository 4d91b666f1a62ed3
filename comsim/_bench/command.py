"""``comsim bench``: its options, its progress display, and the run."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .baselines import ROUNDS
from .report import (
    MissingExtra,
    metadata,
    plot,
    print_table,
    record,
    require_matplotlib,
    write_json,
)
from .rows import KEYS, ROWS, RowSpec, run_rows, select

DEFAULT_N = 6000
QUICK_N, QUICK_ROUNDS = 200, 4
#: progress appears once a run has taken this long (seconds), and only on a terminal
PROGRESS_AFTER = 1.0

DESCRIPTION = """\
Latency of comsim's calls, each beside a raw-Python baseline measured in the same run.
Figures are p50 and p99 in microseconds per call. Each round measures a block of comsim's
calls and a block of the baseline's back to back (in alternating order), so that a shared
machine's slow and fast phases hit both alike; the ratio is the median, over rounds, of
comsim's p50 over its baseline's p50 in the same round."""


def epilog() -> str:
    return "rows (--rows):\n" + "\n".join(
        f"  {spec.key:<8} {spec.name} / {spec.baseline}" for spec in ROWS)


def _rows_arg(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in KEYS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown row {', '.join(unknown) or repr(text)} (rows: {', '.join(KEYS)})")
    return keys


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n", type=int, metavar="N",
                    help=f"calls per row, split over the rounds (default {DEFAULT_N}; "
                         f"--quick: {QUICK_N})")
    ap.add_argument("--rounds", type=int, metavar="R",
                    help="alternating blocks of comsim's calls and its baseline's per row "
                         f"(default {ROUNDS}; --quick: {QUICK_ROUNDS})")
    ap.add_argument("--rows", type=_rows_arg, action="extend", metavar="ROW[,ROW...]",
                    help=f"only these rows (repeatable; default all): {', '.join(KEYS)}")
    ap.add_argument("--json", metavar="FILE",
                    help="also write the run (Python, platform, CPU count, comsim version, "
                         "n, rounds, every row) as JSON to FILE ('-': standard output, "
                         "instead of the table)")
    ap.add_argument("--plot", metavar="FILE.png",
                    help="also draw each row's latency distributions to FILE.png "
                         "(needs matplotlib: pip install 'comsim[plot]')")
    ap.add_argument("--quick", action="store_true",
                    help=f"a tiny run, a few seconds (--n {QUICK_N} --rounds {QUICK_ROUNDS} "
                         "unless given)")


class _Progress:
    """A progress bar on a terminal, shown once the run has taken ``PROGRESS_AFTER`` s; it is
    redrawn only between rounds (no refresh thread to disturb the timings)."""

    def __init__(self, console: Console, total: int) -> None:
        self.on = console.is_terminal
        self.t0 = time.perf_counter()
        self.bar = Progress(TextColumn("{task.description:<30}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                            transient=True, auto_refresh=False)
        self.task = self.bar.add_task("", total=total)
        self.shown = False

    def start(self, spec: RowSpec) -> None:
        self.bar.update(self.task, description=spec.name)
        self._draw()

    def tick(self) -> None:
        self.bar.advance(self.task)
        self._draw()

    def _draw(self) -> None:
        if not self.on:
            return
        if not self.shown and time.perf_counter() - self.t0 >= PROGRESS_AFTER:
            self.bar.start()
            self.shown = True
        if self.shown:
            self.bar.refresh()

    def close(self) -> None:
        if self.shown:
            self.bar.stop()


def _error(text: str) -> int:
    print(f"comsim bench: error: {text}", file=sys.stderr)
    return 2


def _check_target(option: str, path: str | None) -> str | None:
    """Why ``path`` cannot be written (checked before a long run), or None."""
    if path is None or path == "-":
        return None
    if Path(path).is_dir():
        return f"{option} {path}: a directory; give a file name"
    parent = Path(path).resolve().parent
    return None if parent.is_dir() else f"{option} {path}: no directory {parent}"


def run(args: argparse.Namespace) -> int:
    """``comsim bench`` with parsed ``args``; the exit status."""
    n = args.n if args.n is not None else (QUICK_N if args.quick else DEFAULT_N)
    rounds = args.rounds if args.rounds is not None else (QUICK_ROUNDS if args.quick
                                                          else ROUNDS)
    if n < 1 or rounds < 1:
        return _error("--n and --rounds must be at least 1")
    if args.plot is not None:
        try:
            require_matplotlib()
        except MissingExtra as e:
            return _error(str(e))
    if args.plot == "-":
        return _error("--plot needs a file name")
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        why = _check_target(option, path)
        if why:
            return _error(why)
    specs, skipped = select(args.rows)
    for note in skipped:
        print(f"comsim bench: {note}", file=sys.stderr)
    if not specs:
        return _error("no row to run")
    console = Console(highlight=False) if sys.stdout.isatty() else Console(width=200)
    progress = _Progress(console, total=len(specs) * rounds)
    t0 = time.perf_counter()
    try:
        rows = run_rows(specs, n, rounds, start=progress.start, tick=progress.tick)
    finally:
        progress.close()
    meta = metadata(n, rounds, time.perf_counter() - t0)
    if args.json != "-":
        print_table(console, rows, meta)
    if args.json is not None:
        write_json(record(rows, meta), args.json)
    if args.plot is not None:
        plot(rows, meta, args.plot)
    return 0


def main(argv: list[str] | None = None, prog: str = "comsim bench") -> int:
    """The benchmark as its own command (``benchmarks/latency.py``)."""
    ap = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=epilog(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return run(ap.parse_args(argv))
