"""comsim._core is sans-IO: no event loop, no threads, no clock.

The core decides every COM rule (R2, R16, R21-R31) from plain inputs; time enters as data. The
AST check is the authoritative one; the subprocess check confirms it at import time.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import comsim._core

CORE_DIR = Path(comsim._core.__file__).parent
SOURCES = sorted(CORE_DIR.rglob("*.py"))
FORBIDDEN_MODULES = {"anyio", "asyncio", "threading", "time", "trio"}
CLOCK_FUNCS = {
    "time",
    "monotonic",
    "perf_counter",
    "time_ns",
    "monotonic_ns",
    "perf_counter_ns",
    "process_time",
    "thread_time",
}


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(CORE_DIR)) for p in paths]


def test_core_has_sources() -> None:  # R2 R21 R28 (the core exists where we look)
    names = {p.name for p in SOURCES}
    assert {"callobj.py", "stub.py", "sta.py", "rules.py", "marshaldata.py"} <= names


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            # importlib.import_module("x") / __import__("x") with a literal name
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if (
                fname in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                roots.add(node.args[0].value.split(".")[0])
    return roots


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
def test_core_module_imports_no_io(path: Path) -> None:  # R2 R21 R28: sans-IO core
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = _imported_roots(tree) & FORBIDDEN_MODULES
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
def test_core_module_reads_no_clock(path: Path) -> None:  # R2 R23 R28: time enters as data
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        # time.time(), time.monotonic(), ... and any alias bound by `from time import x`
        if isinstance(node, ast.Attribute) and node.attr in CLOCK_FUNCS:
            base = node.value
            if isinstance(base, ast.Name) and base.id == "time":
                raise AssertionError(f"{path.name}:{node.lineno} reads the clock: time.{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
            raise AssertionError(f"{path.name}:{node.lineno} reads the clock: .{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in ("get_running_loop", "get_event_loop"):
            raise AssertionError(f"{path.name}:{node.lineno} touches an event loop")
        if isinstance(node, ast.Await | ast.AsyncFunctionDef | ast.AsyncWith | ast.AsyncFor):
            raise AssertionError(f"{path.name}:{node.lineno} has async code")


def test_checker_catches_violations() -> None:  # R2: the checks above can fail
    tree = ast.parse("import time\nfrom anyio import sleep\nimport threading as t\n")
    assert _imported_roots(tree) == {"time", "anyio", "threading"}


_PROBE = r"""
import json, pkgutil, sys
before = set(sys.modules)
import comsim._core as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, "comsim._core.")]
for n in names:
    __import__(n)
after = set(sys.modules)
print(json.dumps({"before": sorted(before), "new": sorted(after - before), "names": names}))
"""


def test_importing_core_loads_no_io_modules() -> None:  # R2 R21 R28: sans-IO core
    # A fresh interpreter; importing comsim._core must not import comsim's runtime either
    # (``comsim/__init__`` would), so load the subpackage without the parent's __init__.
    probe = (
        "import importlib.util, sys, types\n"
        f"pkg = types.ModuleType('comsim'); pkg.__path__ = [{str(CORE_DIR.parent)!r}]\n"
        "sys.modules['comsim'] = pkg\n" + _PROBE
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    expected = {n for _, n, _ in pkgutil.walk_packages(comsim._core.__path__, "comsim._core.")}
    assert set(data["names"]) == expected
    new_roots = {m.split(".")[0] for m in data["new"]}
    # modules python had already loaded at start-up are not the core's doing
    loaded_by_core = new_roots & FORBIDDEN_MODULES
    assert not loaded_by_core, f"importing comsim._core loaded {sorted(loaded_by_core)}"
    assert not any(m.startswith("comsim._runtime") for m in data["new"])
