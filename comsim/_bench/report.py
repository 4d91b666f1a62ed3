"""The benchmark's outputs: the table (``rich``), the JSON record, the plot (matplotlib, the
optional ``plot`` extra)."""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import comsim

from .rows import Row

PLOT_EXTRA = "comsim[plot]"


class MissingExtra(RuntimeError):
    """An optional dependency is not installed."""


def metadata(n: int, rounds: int, seconds: float) -> dict[str, Any]:
    """Where and how the run was made."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "comsim_version": comsim.__version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_build": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_allowed": allowed,
        "n": n,
        "rounds": rounds,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 2),
    }


def record(rows: list[Row], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON record: the run's metadata, and every row."""
    return {**meta, "rows": [row.as_dict() for row in rows]}


def write_json(data: dict[str, Any], path: str) -> None:
    """``data`` as JSON to ``path`` (``-``: standard output)."""
    text = json.dumps(data, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")


def table(rows: list[Row], meta: dict[str, Any]) -> Table:
    """The rows as a ``rich`` table, numbers right-aligned."""
    t = Table()
    t.add_column("call")  # the names wrap in a narrow terminal, never the figures
    t.add_column("p50 us", justify="right", no_wrap=True)
    t.add_column("p99 us", justify="right", no_wrap=True)
    t.add_column("baseline")
    t.add_column("p50 us", justify="right", no_wrap=True)
    t.add_column("p99 us", justify="right", no_wrap=True)
    t.add_column("ratio", justify="right", no_wrap=True)
    for row in rows:
        d = row.as_dict()
        t.add_row(row.name, f"{d['p50_us']:.2f}", f"{d['p99_us']:.2f}", row.baseline,
                  f"{d['baseline_p50_us']:.2f}", f"{d['baseline_p99_us']:.2f}",
                  f"{row.ratio:.2f}x")
    return t


def print_table(console: Console, rows: list[Row], meta: dict[str, Any]) -> None:
    console.print(f"comsim {meta['comsim_version']} call latency, n={meta['n']}, "
                  f"rounds={meta['rounds']}; Python {meta['python']} on {meta['platform']}, "
                  f"{meta['cpu_count']} CPUs", highlight=False)
    console.print(table(rows, meta))
    console.print("us: microseconds per call; ratio: the median, over rounds, of comsim's p50 "
                  "over its baseline's p50 in the same round", highlight=False)


def require_matplotlib() -> Any:
    """The ``matplotlib`` module, or MissingExtra naming the extra that installs it."""
    try:
        return importlib.import_module("matplotlib")
    except ImportError as e:
        raise MissingExtra(f"--plot needs matplotlib, which is not installed: "
                           f"pip install '{PLOT_EXTRA}' (or pip install matplotlib)") from e


def plot(rows: list[Row], meta: dict[str, Any], path: str) -> None:
    """Each row's distributions, comsim's beside its baseline's, as box plots (log scale)."""
    require_matplotlib()
    figure = importlib.import_module("matplotlib.figure")
    ticker = importlib.import_module("matplotlib.ticker")
    cols = min(3, max(1, len(rows)))
    lines = (len(rows) + cols - 1) // cols
    fig = figure.Figure(figsize=(4.2 * cols, 3.2 * lines + 0.8), layout="constrained")
    axes = fig.subplots(lines, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(rows):
            ax.set_visible(False)
            continue
        row = rows[i]
        ax.boxplot([[x * 1e6 for x in row.ours], [x * 1e6 for x in row.base]],
                   whis=(1, 99), showfliers=False)
        ax.set_xticks([1, 2], ["comsim", row.baseline])
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False,
                                                         minor_thresholds=(2, 0.5)))
        ax.set_title(f"{row.name}\nratio {row.ratio:.2f}x", fontsize=9)
        ax.tick_params(labelsize=8)
        if i % cols == 0:
            ax.set_ylabel("us per call")
    fig.suptitle(f"comsim {meta['comsim_version']} call latency, n={meta['n']}, "
                 f"rounds={meta['rounds']} (box: p25-p75, line: p50, whiskers: p1-p99)",
                 fontsize=10)
    fig.savefig(path, dpi=110)
