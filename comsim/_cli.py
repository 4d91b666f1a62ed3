"""The ``comsim`` command: ``comsim demo``, ``comsim bench`` and ``comsim trace``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio

import comsim
import comsim.testing

from . import _bench

#: ``--format``: the ``comsim.testing.Trace`` method that renders it
FORMATS = {"text": "to_text", "mermaid": "to_mermaid", "chrome": "to_chrome_trace"}


class UsageError(Exception):
    """A bad MODULE:FUNCTION, or a function that is no scenario (exit status 2)."""


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
    ns = parser.parse_args(argv)
    if ns.cmd == "demo":
        from ._demo import run_demo

        run_demo()
        return 0
    if ns.cmd == "bench":
        return _bench.run(ns)
    return run_trace(ns.target, ns.seed, ns.format, ns.output)


# ----------------------------------------------------------------------------- comsim trace
def run_trace(target: str, seed: int, fmt: str, output: str | None) -> int:
    """``comsim trace``; the exit status: 0, 1 (the scenario raised) or 2 (bad input)."""
    try:
        with _cwd_importable():
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


@contextmanager
def _cwd_importable() -> Iterator[None]:
    """The current directory on ``sys.path`` while the command runs (as ``python -m`` has)."""
    saved = list(sys.path)
    sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        sys.path[:] = saved


def load_scenario(target: str) -> Callable[[Any], Any]:
    """The async function named by ``MODULE:FUNCTION``; UsageError says what is wrong."""
    module_name, sep, name = target.rpartition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"expected MODULE:FUNCTION (e.g. my_scenarios:scenario), "
                         f"got {target!r}")
    module = _import(module_name)
    fn = getattr(module, name, None)
    if fn is None:
        raise UsageError(f"{module_name} has no {name!r}")
    if not inspect.iscoroutinefunction(fn):
        raise UsageError(f"{target} is not an async function: expected "
                         f"`async def {name}(rt)`")
    try:
        inspect.signature(fn).bind(object())
    except TypeError:
        raise UsageError(f"{target} must take one argument, the runtime: "
                         f"`async def {name}(rt)`") from None
    except ValueError:  # no signature to check: let the call say
        pass
    return fn


def _import(module_name: str) -> ModuleType:
    is_path = module_name.endswith(".py") or "/" in module_name or os.sep in module_name
    try:
        if not is_path:
            return importlib.import_module(module_name)
        path = Path(module_name)
        if not path.is_file():
            raise UsageError(f"no such file: {module_name}")
        sys.path.insert(0, str(path.resolve().parent))  # its sibling modules import
        # its own name, unless that names a module already imported (never replace one)
        name = path.stem if path.stem not in sys.modules else f"_comsim_trace_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"cannot import {module_name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    except UsageError:
        raise
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise UsageError(f"no module named {module_name!r} (looked in the current "
                             f"directory and sys.path)") from None
        raise UsageError(f"importing {module_name} failed: {_brief(e)}") from None
    except Exception as e:  # a syntax error, or the module's own code raising
        raise UsageError(f"importing {module_name} failed: {_brief(e)}") from None


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
        except Exception as e:
            raise _ScenarioFailed(_brief(e)) from None
    return events


def _brief(exc: BaseException) -> str:
    """``Type: message``, and where it was raised: one or two lines, no traceback dump."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, SyntaxError):
        return f"{text} ({exc.filename}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    # where the user's code raised: the last frame outside comsim, anyio and asyncio
    skip = tuple(str(Path(m.__file__).resolve().parent) + os.sep
                 for m in (comsim, anyio, asyncio) if m.__file__)
    own = [f for f in frames if not str(Path(f.filename).resolve()).startswith(skip)]
    last = own[-1] if own else frames[-1] if frames else None
    if last is not None:
        text += f"\n  at {last.filename}:{last.lineno} in {last.name}"
    return text


if __name__ == "__main__":
    sys.exit(main())
