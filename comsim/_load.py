"""Finding a user's scenario for the command line: ``MODULE:FUNCTION``, where MODULE is a dotted
name importable from the current directory or a path to a ``.py`` file, and FUNCTION an
``async def scenario(rt)``; and a brief account of an exception (no traceback dump)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
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
from comsim._core.text import describe
from comsim.testing._pool import exec_file

__all__ = ["UsageError", "brief", "cwd_importable", "load_scenario"]


class UsageError(Exception):
    """A bad MODULE:FUNCTION, or a function that is no scenario (exit status 2)."""


@contextmanager
def cwd_importable() -> Iterator[None]:
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
        return exec_file(path, name)
    except UsageError:
        raise
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise UsageError(f"no module named {module_name!r} (looked in the current "
                             f"directory and sys.path)") from None
        raise UsageError(f"importing {module_name} failed: {brief(e)}") from None
    except Exception as e:  # a syntax error, or the module's own code raising
        raise UsageError(f"importing {module_name} failed: {brief(e)}") from None
    except SystemExit as e:  # a script's top-level code: sys.exit(), argparse
        raise UsageError(f"importing {module_name} exited (SystemExit: {e.code!r}): its "
                         f"top-level code ran; put it under `if __name__ == \"__main__\":`"
                         ) from None


def brief(exc: BaseException) -> str:
    """``Type: message``, and where it was raised: one or two lines, no traceback dump."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = describe(exc)
    if isinstance(exc, SyntaxError):
        return f"{text} ({exc.filename}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    # where the user's code raised: the last frame outside comsim, anyio and asyncio
    skip = tuple(str(Path(m.__file__).resolve().parent) + os.sep
                 for m in (comsim, anyio, asyncio) if m.__file__)
    own = [f for f in frames if not str(Path(f.filename).resolve()).startswith(skip)]
    last = own[-1] if own else None  # not comsim's own frames (a Deadlock names its waits)
    if last is not None:
        text += f"\n  at {last.filename}:{last.lineno} in {last.name}"
    return text
