"""Worker processes for ``explore(workers=N)`` and ``explore(executor=...)``: how they start
and how they find the scenario.

The start method is comsim's choice, the same on every Python version (``context``):
``fork`` on Linux and the other POSIX systems but macOS, while the process has one thread;
otherwise ``forkserver`` where there is one (Linux), else ``spawn`` (macOS, Windows). A fork
copies the process as it is: no start-up, nothing imported again, so a scenario defined in a
script (``__main__``) and a script without an ``if __name__ == "__main__":`` guard both work;
but a fork of a process with other threads (a threaded comsim runtime's apartments, a progress
bar's refresh) copies the locks they hold, and Python 3.12+ warns of deadlocks. The threads are
counted by the system (``/proc/self/task``), as Python 3.12's warning counts them, since a
library's own native threads are invisible to ``threading``.

A scenario crosses to a worker as ``(module, qualname, path)`` (``by_name``): ``path`` is its
file when a fresh process could not import the module by its name (a script's ``__main__``,
a file the command line loaded from a path), else None. A worker takes the module it already
has (a fork, or a script that ``spawn`` ran again as ``__mp_main__``), or imports it by name,
or loads the file under a private name (``private_name``, which the parent maps to the same
module, so that the worker's outcomes unpickle), where ``__name__ == "__main__"`` is false.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import multiprocessing
import os
import re
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from pathlib import Path
from types import ModuleType
from typing import Any

from .._core.check import BadArgumentValue

__all__ = [
    "ENDING",
    "BrokenWorkers",
    "NotLoadable",
    "Target",
    "WorkerPool",
    "broken",
    "by_name",
    "check_not_starting",
    "context",
    "load",
    "private_name",
    "threads",
]

#: a scenario as a worker finds it: module, qualified name, the file to load (or None)
Target = tuple[str, str, str | None]

#: > 0 while this process loads a scenario's file (its top-level code runs)
_loading = 0
#: how long ``threads`` waits for threads that are ending (they take < 1 ms)
ENDING = 0.02


class BrokenWorkers(BadArgumentValue, BrokenProcessPool):
    """A worker process of ``explore(workers=N)`` died or did not start:
    COMError(E_INVALIDARG), also a ValueError and the ``BrokenProcessPool`` of before."""


class NotLoadable(ImportError):
    """A worker could not load the scenario (picklable: it crosses back from the worker)."""


# ------------------------------------------------------------------ starting the workers
def threads() -> int:
    """This process's threads, as the system counts them (Linux), else as ``threading``
    does. Threads that Python has joined but the system still lists (ending: a pool or a
    runtime just shut down, before Python 3.13) get ``ENDING`` seconds to go."""
    n = _threads()
    deadline = time.monotonic() + ENDING
    while n > 1 and threading.active_count() == 1 and time.monotonic() < deadline:
        time.sleep(0.001)
        n = _threads()
    return n


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def context() -> BaseContext:
    """The start method for the workers (see the module's docstring)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and sys.platform != "darwin" and threads() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def check_not_starting() -> None:
    """Refuse to start workers from code that runs while this process starts as a worker, or
    loads a scenario's file: a script's top level, run again without its
    ``if __name__ == "__main__":`` block (each worker would start workers of its own)."""
    if _loading or getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "explore(workers=...) was called while a worker process was starting (it runs "
            "the script's top-level code again, or loads the scenario's file): call explore "
            "under `if __name__ == \"__main__\":` in the script")


class WorkerPool(ProcessPoolExecutor):
    """A process pool of ``workers`` processes started by ``context()``'s method."""

    def __init__(self, workers: int) -> None:
        check_not_starting()
        ctx = context()
        self.start_method = ctx.get_start_method()
        super().__init__(max_workers=workers, mp_context=ctx)


def broken(exc: BaseException, workers: int, pool: WorkerPool) -> BrokenWorkers:
    """The error for a pool whose worker died, naming the likely cause."""
    method = pool.start_method
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if getattr(getattr(main, "__spec__", None), "name", "").endswith("__main__"):
        script = None  # python -m package: its __main__ is not run again
    if method == "fork":
        cause = ("the worker was killed (out of memory?), or the scenario ended its process "
                 "(os._exit, a crash in native code)")
    elif script:
        cause = (f"workers started by {method!r} run the script {script} again, without its "
                 f"`if __name__ == \"__main__\":` block: if the script calls explore at its "
                 f"top level, move the call under that guard; or the scenario's module, or a "
                 f"module it imports, fails to import in a fresh process")
    else:
        cause = (f"the scenario's module, or a module it imports, fails to import in a fresh "
                 f"process (workers started by {method!r}), or the worker was killed")
    return BrokenWorkers(f"explore(workers={workers}): a worker process died or did not "
                         f"start ({type(exc).__name__}: {exc}); the likely cause: {cause}. "
                         f"The worker's own traceback, if any, is on standard error")


# ------------------------------------------------------------------ finding the scenario
def by_name(scenario: Any) -> Target:
    """How a worker finds ``scenario``; BadArgumentValue if it cannot."""
    module, name = getattr(scenario, "__module__", None), getattr(scenario, "__qualname__", "")
    if not module or "<" in name:
        raise BadArgumentValue("explore(workers=...): the scenario must be importable by name "
                               f"(a module-level function), not {scenario!r}")
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    if mod is None or not file or not file.endswith(".py") or _importable(module, file):
        return module, name, None
    path = str(Path(file).resolve())
    sys.modules.setdefault(private_name(path), mod)  # a worker's pickles name this module
    return module, name, path


def private_name(path: str) -> str:
    """The name under which a worker loads the file ``path``: never ``__main__``."""
    stem = re.sub(r"\W", "_", Path(path).stem)
    digest = hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()[:10]
    return f"_comsim_scenario_{stem}_{digest}"


def _importable(module: str, file: str) -> bool:
    """Whether importing ``module`` by its name finds ``file`` (looked up, not imported)."""
    if module == "__main__":
        return False
    parent = module.rpartition(".")[0]
    search = getattr(sys.modules.get(parent), "__path__", None) if parent else None
    if parent and search is None:
        return False
    try:
        spec = importlib.machinery.PathFinder.find_spec(module, search)
    except (ImportError, ValueError):
        return False
    origin = getattr(spec, "origin", None)
    return isinstance(origin, str) and _same(origin, file)


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def load(target: Target) -> Any:
    """The scenario named by ``target``, in this process; NotLoadable says why not."""
    module, name, path = target
    mod = sys.modules.get(module)
    if mod is None or (path is not None and not _same(getattr(mod, "__file__", None) or "",
                                                        path)):
        mod = _import(module) if path is None else _load_file(path)
    obj: Any = mod
    try:
        for part in name.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        hint = (": a scenario in __main__ without a file (python -c, an interactive "
                "session) cannot be loaded in a fresh process; define it in a module or a "
                "script file" if module == "__main__" and path is None else "")
        file = getattr(mod, "__file__", None)
        raise NotLoadable(f"{module}.{name} is not in the worker's module {mod.__name__}"
                          f"{f' ({file})' if file else ''}{hint}") from None
    return obj


def _import(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise NotLoadable(f"cannot import the scenario's module {module!r} in a worker "
                          f"process: {e}") from None


def exec_file(path: str | Path, name: str) -> ModuleType:
    """The Python file ``path`` run as the module ``name`` (in ``sys.modules`` once it has
    run; taken out again if it fails).

    Raises:
        ImportError: no module can be made from ``path``.
        Whatever the file's own code raises (``SystemExit`` too).
    """
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def _load_file(path: str) -> ModuleType:
    global _loading
    name = private_name(path)
    if name in sys.modules:
        return sys.modules[name]
    folder = str(Path(path).parent)
    if folder not in sys.path:  # its sibling modules import
        sys.path.append(folder)
    _loading += 1
    try:
        return exec_file(path, name)
    except (Exception, SystemExit) as e:
        raise NotLoadable(f"loading the scenario's file {path} in a worker process failed: "
                          f"{type(e).__name__}: {e}") from None
    finally:
        _loading -= 1
