#!/usr/bin/env python3
"""comsim's two commands, for a fresh machine with only python3 and pip.

    python3 tasks.py demo     # creates .venv, installs comsim, runs `comsim demo`
    python3 tasks.py test     # creates .venv, installs comsim[test], runs the test suite
    python3 tasks.py bench    # the latency benchmark
    python3 tasks.py lint     # ruff and mypy

The virtual environment lives in `.venv` beside this file and is reused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".comsim-installed"


def _ensure(extra: str) -> None:
    if not PY.exists():
        print(f"creating {VENV.name} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    have = STAMP.read_text().split() if STAMP.exists() else []
    want = extra or "base"
    pyproject_mtime = str(int((ROOT / "pyproject.toml").stat().st_mtime))
    if want in have and pyproject_mtime in have:
        return
    spec = f".[{extra}]" if extra else "."
    print(f"installing comsim{f'[{extra}]' if extra else ''} into {VENV.name} ...", flush=True)
    subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", spec],
        cwd=ROOT,
        check=True,
    )
    keep = [w for w in have if not w.isdigit()] if pyproject_mtime in have else []
    STAMP.write_text(" ".join([*keep, want, pyproject_mtime]))


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "test"
    rest = argv[1:]
    if cmd == "demo":
        _ensure("")
        return subprocess.call([str(PY), "-m", "comsim", "demo", *rest], cwd=ROOT)
    if cmd == "test":
        _ensure("test")
        return subprocess.call([str(PY), "-m", "pytest", *rest], cwd=ROOT)
    if cmd == "bench":
        _ensure("")
        return subprocess.call([str(PY), "benchmarks/latency.py", *rest], cwd=ROOT)
    if cmd == "lint":
        _ensure("dev")
        rc = subprocess.call([str(PY), "-m", "ruff", "check", "."], cwd=ROOT)
        return rc or subprocess.call([str(PY), "-m", "mypy"], cwd=ROOT)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
