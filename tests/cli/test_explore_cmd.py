"""``comsim explore MODULE:FUNCTION``: a table of outcomes with first seeds and counts, the
shrunk and saved schedule of each failure, JSON, the same result with workers, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comsim import _cli
from comsim.testing import Schedule, replay
from comsim.testing._runs import Raised


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    rc = _cli.main(["explore", *args, "--json", "-"])
    return rc, json.loads(capsys.readouterr().out)


def test_outcomes_first_seeds_and_counts(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, report = _json(capsys, "explore_me.py:two_callers", "--runs", "60")
    assert rc == 0
    assert report["runs"] == 60 and report["strategy"] == "random"
    rows = report["outcomes"]
    assert sum(r["count"] for r in rows) == 60
    assert [r["first_seed"] for r in rows] == sorted(r["first_seed"] for r in rows)
    assert all("schedule" not in r for r in rows)


def test_a_table_on_the_terminal_side(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["explore", "explore_me.py:two_callers", "--runs", "30"]) == 0
    out = capsys.readouterr().out
    assert "first seed" in out and "30 runs (random)" in out
    assert "('a1', 'a2', 'b1', 'b2')" in out  # the default order's outcome, seed 0


def test_failures_are_shrunk_and_saved(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, report = _json(capsys, "explore_me.py:fails_when_b_first", "--runs", "40",
                       "--save-dir", str(here / "saved"))
    assert rc == 1  # some run raised
    failing = [r for r in report["outcomes"] if r["outcome"].startswith("raised")]
    assert failing
    for row in failing:
        path = Path(row["schedule"])
        assert path.parent == here / "saved"
        small = Schedule.load(path)
        assert small.preemptions == row["preemptions"] <= row["preemptions_before_shrinking"]
        from explore_me import fails_when_b_first  # type: ignore[import-not-found]

        got = replay(fails_when_b_first, small)
        assert isinstance(got, Raised) and f"raised {got.type}: {got.message}" == row["outcome"]


def test_workers_give_the_same_report(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["explore_me.py:two_callers", "--runs", "40", "--strategy", "pct", "--depth", "2"]
    rc1, one = _json(capsys, *args)
    rc2, two = _json(capsys, *args, "--workers", "2")
    assert rc1 == rc2 == 0 and one == two and one["pct_bound"] > 0


def test_exhaustive_says_whether_it_ran_every_order(here: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, report = _json(capsys, "explore_me.py:two_callers", "--strategy", "exhaustive",
                       "--runs", "5000")
    assert rc == 0 and report["exhausted"] and len(report["outcomes"]) == 6


@pytest.mark.parametrize(("args", "message"), [
    (["nowhere:scenario"], "no module named 'nowhere'"),
    (["explore_me.py:missing"], "has no 'missing'"),
    (["explore_me.py:two_callers", "--runs", "0"], "must be >= 1"),
    (["explore_me.py:two_callers", "--seeds", "0"], "must be >= 1"),
    (["explore_me.py:two_callers", "--save-dir", "explore_me.py"], "not a directory"),
])
def test_bad_input_is_a_usage_error(here: Path, capsys: pytest.CaptureFixture[str],
                                    args: list[str], message: str) -> None:
    assert _cli.main(["explore", *args]) == 2
    assert message in capsys.readouterr().err


def test_seeds_is_the_api_name_of_runs(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # API.md: comsim explore MODULE:FUNCTION [--seeds N] ...; --runs is the same option
    rc, report = _json(capsys, "explore_me.py:two_callers", "--seeds", "30")
    assert rc == 0
    assert report["runs"] == 30
