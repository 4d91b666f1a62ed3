#!/usr/bin/env python3
"""comsim's two commands, for a fresh machine with only python3 and pip.

    python3 tasks.py demo     # creates .venv, installs comsim, runs `comsim demo`
    python3 tasks.py test     # creates .venv, installs comsim[test], runs the test suite
                              # (on every core: pytest -n auto; extra arguments go to pytest)
    python3 tasks.py bench    # the latency benchmark
    python3 tasks.py lint     # ruff, mypy and the import layers (lint-imports)

The virtual environment lives in `.venv` beside this file and is reused.
"""

from __future__ import annotations

import hashlib
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
    """Create .venv if needed and install comsim (with ``extra``) unless already done for this
    pyproject.toml. The stamp file records what was installed, and for which pyproject."""
    if not PY.exists():
        print(f"creating {VENV.name} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    lines = STAMP.read_text().split() if STAMP.exists() else []
    installed = set(lines[1:]) if lines and lines[0] == key else set()
    want = extra or "base"
    if want in installed:
        return
    spec = f".[{extra}]" if extra else "."
    print(f"installing comsim{f'[{extra}]' if extra else ''} into {VENV.name} ...", flush=True)
    subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", spec],
        cwd=ROOT,
        check=True,
    )
    STAMP.write_text(" ".join([key, *sorted(installed | {want})]))


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "test"
    rest = argv[1:]
    if cmd == "demo":
        _ensure("")
        return subprocess.call([str(PY), "-m", "comsim", "demo", *rest], cwd=ROOT)
    if cmd == "test":
        _ensure("test")
        # spread over the machine's cores (pytest-xdist) unless told otherwise
        spread = [] if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in rest) \
            else ["-n", "auto"]
        return subprocess.call([str(PY), "-m", "pytest", *spread, *rest], cwd=ROOT)
    if cmd == "bench":
        _ensure("")
        return subprocess.call([str(PY), "benchmarks/latency.py", *rest], cwd=ROOT)
    if cmd == "lint":
        _ensure("dev")
        rc = subprocess.call([str(PY), "-m", "ruff", "check", "."], cwd=ROOT)
        rc = rc or subprocess.call([str(PY), "-m", "mypy"], cwd=ROOT)
        # the layers and no import cycle, type-only imports counted (pyproject.toml)
        return rc or subprocess.call([str(BIN / "lint-imports")], cwd=ROOT)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
