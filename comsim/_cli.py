"""The ``comsim`` command: ``comsim demo``, ``comsim bench``, ``comsim trace`` and
``comsim explore``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import comsim
import comsim.testing

from . import _bench, _explore_cmd
from ._load import UsageError, brief, cwd_importable, load_scenario

#: ``--format``: the ``comsim.testing.Trace`` method that renders it
FORMATS = {"text": "to_text", "mermaid": "to_mermaid", "chrome": "to_chrome_trace"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comsim", description="COM apartments on asyncio")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="run the seed scenario and print its timelines")
    bench = sub.add_parser("bench", help="measure call latency against raw baselines",
                           description=_bench.DESCRIPTION, epilog=_bench.epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _bench.add_arguments(bench)
    trace = sub.add_parser(
        "trace", help="run a scenario once on the deterministic runtime and write its trace",
        description="Import MODULE (a dotted name importable from the current directory, or "
                    "a path to a .py file), run its FUNCTION, an `async def scenario(rt)`, "
                    "once on the deterministic runtime (comsim.testing.run, "
                    "comsim.Runtime(deterministic=True, seed=N)) while capturing the trace, "
                    "and write the trace.")
    trace.add_argument("target", metavar="MODULE:FUNCTION",
                       help="e.g. my_scenarios:scenario or path/to/file.py:scenario")
    trace.add_argument("--seed", type=int, default=0, help="the runtime's seed (default 0)")
    trace.add_argument("--format", choices=list(FORMATS), default="text",
                       help="text (default), mermaid (a sequence diagram) or chrome "
                            "(JSON for chrome://tracing and Perfetto)")
    trace.add_argument("-o", "--output", metavar="FILE", help="write here, not to stdout")
    explore = sub.add_parser(
        "explore", help="run a scenario under many schedules and count its outcomes",
        description=_explore_cmd.DESCRIPTION)
    _explore_cmd.add_arguments(explore)
    ns = parser.parse_args(argv)
    try:
        return _run(ns)
    except BrokenPipeError:
        # the reader went away (``comsim demo | head -1``): no traceback. As Python's
        # documentation advises, what is still buffered goes to devnull, so that the flush at
        # exit does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(ns: argparse.Namespace) -> int:
    if ns.cmd == "demo":
        from ._demo import run_demo

        run_demo()
        return 0
    if ns.cmd == "bench":
        return _bench.run(ns)
    if ns.cmd == "explore":
        return _explore_cmd.run(ns)
    return run_trace(ns.target, ns.seed, ns.format, ns.output)


# ----------------------------------------------------------------------------- comsim trace
def run_trace(target: str, seed: int, fmt: str, output: str | None) -> int:
    """``comsim trace``; the exit status: 0, 1 (the scenario raised) or 2 (bad input)."""
    try:
        with cwd_importable():
            scenario = load_scenario(target)
            events = _capture(scenario, seed)
    except UsageError as e:
        print(f"comsim trace: error: {e}", file=sys.stderr)
        return 2
    except _ScenarioFailed as e:
        print(f"comsim trace: {target} raised {e.brief}", file=sys.stderr)
        return 1
    render = getattr(events, FORMATS[fmt], None)
    if render is None:
        print(f"comsim trace: error: this comsim's trace has no {FORMATS[fmt]}() "
              f"(--format {fmt})", file=sys.stderr)
        return 2
    text = json.dumps(render()) if fmt == "chrome" else str(render())
    if not text.endswith("\n"):
        text += "\n"
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as e:
        print(f"comsim trace: error: cannot write {output}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"comsim trace: {len(events)} events written to {output}", file=sys.stderr)
    return 0


class _ScenarioFailed(Exception):
    def __init__(self, brief: str) -> None:
        super().__init__(brief)
        self.brief = brief


def _capture(scenario: Callable[[Any], Any], seed: int) -> comsim.testing.Trace:
    async def main() -> None:
        async with comsim.Runtime(deterministic=True, seed=seed) as rt:
            await scenario(rt)

    with comsim.testing.capture_trace() as events:
        try:
            comsim.testing.run(main)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # SystemExit, CancelledError too: the scenario's failure
            raise _ScenarioFailed(brief(e)) from None
    return events


if __name__ == "__main__":
    sys.exit(main())
