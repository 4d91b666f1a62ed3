"""How ``explore(workers=N)`` starts its processes, whatever the platform's default: by fork
while the process has one thread, else by forkserver (spawn without it), with no warning of a
fork in a multi-threaded process; scenarios defined in a script (``__main__``) or loaded from
a file by the command line reach the workers; a pool whose worker died is a clear error. The
result always equals ``workers=1``'s."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

import comsim
from comsim._cli import main as cli
from comsim.testing import _pool, explore

from .scenarios import two_callers

ROOT = Path(__file__).resolve().parents[2]
SEEDS = range(40)  # two blocks: both workers get one
METHODS = multiprocessing.get_all_start_methods()
#: the start method with other threads alive, and with this one alone
THREADED = "forkserver" if "forkserver" in METHODS else "spawn"
ALONE = "fork" if "fork" in METHODS and sys.platform != "darwin" else THREADED

SCENARIO = '''
import threading
from typing import NamedTuple

import anyio

import comsim
from comsim.testing import _pool, explore


class ILog(comsim.Interface):
    async def Log(self, who: str) -> int: ...


class Log(comsim.CoClass, ILog):
    def __init__(self) -> None:
        super().__init__()
        self.seen = []

    async def Log(self, who: str) -> int:
        self.seen.append(who)
        return len(self.seen)


class Seen(NamedTuple):  # an outcome of a class of this file: it must unpickle in the parent
    order: tuple


async def scenario(rt):
    a, b, c = [await rt.create_sta(n) for n in ("a", "b", "c")]
    log = {}

    async def serve():
        log["obj"] = obj = Log()
        return comsim.marshal_interface(obj, ILog, flags=comsim.MSHLFLAGS.TABLESTRONG)

    stream = await c.run(serve)

    async def caller(name):
        proxy = comsim.unmarshal_interface(stream, ILog)
        await proxy.Log(name + "1")
        await proxy.Log(name + "2")

    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run, caller, "a")
        tg.start_soon(b.run, caller, "b")
    return Seen(tuple(log["obj"].seen))


def report(label):
    """Explore with one worker and with two; print the start method and whether they agree."""
    one = explore(scenario, range(40))
    method = _pool.context().get_start_method()
    two = explore(scenario, range(40), workers=2)
    print(label, method, dict(one) == dict(two) and one.counts == two.counts, len(one),
          flush=True)


def another_thread():
    threading.Thread(target=threading.Event().wait, daemon=True).start()
'''


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(SCENARIO + textwrap.dedent(body), encoding="utf-8")
    return path


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-W", "always::DeprecationWarning", str(path)],
                          capture_output=True, text=True, timeout=60, env=env,
                          cwd=path.parent)


@contextmanager
def _thread_alive() -> Iterator[None]:
    """Another thread in this process while the block runs."""
    done = threading.Event()
    t = threading.Thread(target=done.wait)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()


def _load(path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The file loaded as module ``name`` (importable by no name), gone after the test."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(sys.modules, _pool.private_name(str(path.resolve())), module)
    spec.loader.exec_module(module)
    return module


def _fork_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "fork" in str(w.message)]


# ------------------------------------------------------------------ the start method
def test_fork_with_one_thread_another_method_with_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "_threads", lambda: 1)
    assert _pool.context().get_start_method() == ALONE
    monkeypatch.setattr(_pool, "_threads", lambda: 3)  # a library's native threads count too
    assert _pool.context().get_start_method() == THREADED
    monkeypatch.setattr(_pool, "_threads", lambda: 1)
    monkeypatch.setattr(sys, "platform", "darwin")  # fork is unsafe on macOS even so
    assert _pool.context().get_start_method() != "fork"


def test_with_a_threaded_runtime_alive_the_workers_are_not_forked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []

    class Spy(_pool.WorkerPool):
        def __init__(self, workers: int) -> None:
            super().__init__(workers)
            started.append(self.start_method)

    monkeypatch.setattr(_pool, "WorkerPool", Spy)
    one = explore(two_callers, SEEDS)
    ready, done = threading.Event(), threading.Event()

    async def hold() -> None:  # a threaded runtime with an apartment thread, alive meanwhile
        async with comsim.Runtime() as rt:
            await rt.create_sta("held")
            ready.set()
            await anyio.to_thread.run_sync(done.wait)

    holder = threading.Thread(target=anyio.run, args=(hold,))
    holder.start()
    try:
        assert ready.wait(30)
        assert _pool.threads() >= 3
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            two = explore(two_callers, SEEDS, workers=2)
    finally:
        done.set()
        holder.join()
    assert started == [THREADED]
    assert _fork_warnings(caught) == []
    assert dict(two) == dict(one) and two.counts == one.counts and two.schedules == one.schedules


def test_explore_refuses_to_start_workers_while_this_process_starts_as_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # what a script's top level, run again by spawn or forkserver, would do
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RuntimeError, match="__main__"):
        explore(two_callers, SEEDS, workers=2)


# ------------------------------------------------------------------ scripts
def test_a_guarded_script_explores_its_own_scenario_with_and_without_threads(
        tmp_path: Path) -> None:
    path = _script(tmp_path, "guarded.py", '''
        if __name__ == "__main__":
            report("alone")
            another_thread()
            report("threads")
    ''')
    out = _run(path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [f"alone {ALONE} True 6", f"threads {THREADED} True 6"]
    assert "multi-threaded" not in out.stderr


@pytest.mark.skipif(ALONE != "fork", reason="fork is the only start method that needs no guard")
def test_an_unguarded_script_works_alone_and_is_told_of_the_guard_with_threads(
        tmp_path: Path) -> None:
    # alone: forked workers run nothing again. With a thread alive: the workers, started by
    # forkserver, run the script's top level again, and the explore there refuses to start
    # workers of its own; the pool breaks, and the error says why
    path = _script(tmp_path, "unguarded.py", '''
        report("alone")
        another_thread()
        report("threads")
    ''')
    out = _run(path)
    assert out.returncode == 1
    assert out.stdout.split("\n")[0] == "alone fork True 6"
    assert "threads" not in out.stdout
    last = out.stderr.strip().splitlines()[-1]
    assert "BrokenWorkers: E_INVALIDARG" in last and "explore(workers=2)" in last
    assert f"run the script {path}" in last and 'if __name__ == "__main__":' in last
    assert "multi-threaded" not in out.stderr


# ------------------------------------------------------------------ files loaded by path
def test_the_command_line_spreads_a_file_it_loaded_over_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    path = _script(tmp_path, "cli_scenarios.py", "")
    # the file's own name is taken: it is loaded as _comsim_trace_cli_scenarios, a name no
    # fresh process can import, so the workers load the file itself
    monkeypatch.setitem(sys.modules, "cli_scenarios", ModuleType("cli_scenarios"))
    runs = []
    try:
        for workers in ("1", "2"):
            with _thread_alive(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                status = cli(["explore", f"{path}:scenario", "--runs", "40", "--workers",
                              workers, "--json", "-"])
            assert status == 0, capsys.readouterr().err
            assert _fork_warnings(caught) == []
            runs.append(json.loads(capsys.readouterr().out))
    finally:
        for name in ("_comsim_trace_cli_scenarios", _pool.private_name(str(path.resolve()))):
            sys.modules.pop(name, None)
    assert runs[0]["outcomes"] == runs[1]["outcomes"] and len(runs[0]["outcomes"]) == 6


def test_an_executor_loads_a_scenario_from_its_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load(_script(tmp_path, "by_path.py", ""), "loaded_by_path", monkeypatch)
    gone = _load(_script(tmp_path, "gone.py", ""), "loaded_then_deleted", monkeypatch)
    (tmp_path / "gone.py").unlink()
    one = explore(module.scenario, SEEDS)
    assert {type(o).__name__ for o in one} == {"Seen"}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(THREADED)) as pool:
        two = explore(module.scenario, SEEDS, executor=pool)
        assert dict(two) == dict(one) and two.counts == one.counts
        with pytest.raises(comsim.COMError) as exc:
            explore(gone.scenario, SEEDS, executor=pool)
    assert exc.value.hresult == comsim.hresult.E_INVALIDARG and isinstance(exc.value,
                                                                          ValueError)
    assert "executor=" in str(exc.value) and "gone.py" in str(exc.value)


# ------------------------------------------------------------------ a broken pool
async def dies_in_a_worker(rt: Any) -> int:
    """Ends its process when run in a worker (a crash, as native code might)."""
    if multiprocessing.parent_process() is not None:
        os._exit(3)
    return 1


def test_a_worker_that_dies_is_a_clear_error() -> None:
    with pytest.raises(BrokenProcessPool) as exc:
        explore(dies_in_a_worker, range(2), workers=2)
    err = exc.value
    assert isinstance(err, comsim.COMError) and isinstance(err, ValueError)
    assert err.hresult == comsim.hresult.E_INVALIDARG
    assert "explore(workers=2): a worker process died" in str(err)
    assert "likely cause" in str(err)
