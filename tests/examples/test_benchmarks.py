"""The benchmarks still run (tiny sizes; no timing is asserted: speed is a benchmark, not a
test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..helpers import ROOT


def test_comsim_bench_prints_every_row_with_its_baseline() -> None:
    out = subprocess.run([sys.executable, "-m", "comsim", "bench", "--n", "60", "--rounds", "2",
                          "--json", "-"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = {"same apartment", "STA->STA", "MTA->STA", "STA->MTA", "STA->STA Begin_/Finish_",
            "STA->STA, Runtime(cpu=N)", "STA->STA Cancel(0)->Finish_", "deterministic STA->STA",
            "STA->NA"}
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2:
        rows.add("STA->STA, STAs on 2 CPUs")  # the two threads placed apart
    assert {row["name"] for row in report["rows"]} == rows
    for row in report["rows"]:
        assert row["p50_us"] > 0 and row["baseline_p50_us"] > 0 and row["ratio_p50"] > 0


def test_latency_script_is_comsim_bench() -> None:
    """benchmarks/latency.py, from a source checkout, runs the packaged benchmark."""
    out = subprocess.run([sys.executable, "benchmarks/latency.py", "--rows", "same,sta-sta",
                          "--n", "40", "--rounds", "2"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "same apartment" in out.stdout and "direct await" in out.stdout
    assert "STA->STA" in out.stdout and "two loops" in out.stdout


def test_throughput_scenarios_run_and_replay() -> None:  # R21 R29 R18
    out = subprocess.run([sys.executable, "benchmarks/throughput.py", "--calls", "200",
                          "--rate-calls", "200"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "same trace: True" in out.stdout
    assert "comsim threads left: 0" in out.stdout


def test_floor_prototypes_run_beside_comsim() -> None:
    out = subprocess.run([sys.executable, "benchmarks/floor.py", "--n", "100"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows = [line.split()[0:3] for line in out.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["bare", "shape", "comsim"]
    assert all("ratio" in line for line in out.stdout.splitlines()[1:])


def test_instruction_count_driver_runs_every_kind() -> None:
    """benchmarks/instructions.py's driver (what valgrind counts) runs each kind; counting
    itself needs valgrind, which a plain machine lacks, and is a benchmark's job."""
    for kind, runs in (("race", "3"), ("race_unrecorded", "3"), ("empty", "3"),
                       ("asyncio.run", "3"), ("tput", "32"), ("tput_raw", "32")):
        out = subprocess.run([sys.executable, "benchmarks/instructions.py", "--child", kind,
                              runs], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert out.returncode == 0, (kind, out.stderr)
