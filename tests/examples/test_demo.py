"""`comsim demo`: the seed procedure's three outcomes (R29) and a synchronous call (R13)."""

from __future__ import annotations

import subprocess
import sys

from comsim._demo import run_demo


def test_demo_shows_the_three_outcomes() -> None:  # R27 R28 R29
    lines: list[str] = []
    result = run_demo(lines.append)
    stages = [r["stage"] for r in result["cancel"]]
    assert stages == ["queued", "running", "finished"]
    for r in result["cancel"]:
        assert r["cancel"] == "S_OK"
        assert r["finish"] == "RPC_E_CALL_CANCELED"  # Finish_ is still owed, and says so
    # no guarantee the server stopped: it never ran, was interrupted, or had done its work
    assert [r["server"] for r in result["cancel"]] == [
        [], ["running: interrupted"], ["finished: done"]]
    text = "\n".join(lines)
    assert "call ends cancelled (stage=finished)" in text
    assert "late reply dropped" in text


def test_demo_sync_call_timeline() -> None:  # R13
    lines: list[str] = []
    result = run_demo(lines.append)
    sync = "\n".join(result["sync"])
    for step in ("request sent", "dispatched", "server method returned (S_OK)",
                 "Finish_ returns (S_OK)", "got 'sync result'"):
        assert step in sync


def test_comsim_demo_command_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "comsim", "demo"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Outcome 'finished'" in out.stdout
