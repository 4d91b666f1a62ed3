"""``comsim explore``'s faults, each fixed with this test: a saved "failing" schedule that did
not fail, outcomes read as rich markup, a save directory that cannot be written, a depth PCT
cannot draw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comsim import _cli
from comsim.testing import Schedule, replay
from comsim.testing._explore import MAX_DEPTH
from comsim.testing._runs import Raised


def test_a_saved_failure_fails_again_when_the_other_outcomes_are_no_tuples(
        here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: shrinking kept whatever ``Raised.__eq__`` answered NotImplemented to (any int,
    # str or None: true), so the saved "failing" schedule replayed to 42
    rc = _cli.main(["explore", "explore_me.py:fails_when_b_first_else_42", "--runs", "40",
                    "--save-dir", str(here / "saved"), "--json", "-"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1
    rows = [r for r in report["outcomes"] if r["outcome"].startswith("raised")]
    assert rows
    from explore_me import fails_when_b_first_else_42  # type: ignore[import-not-found]

    for row in rows:
        got = replay(fails_when_b_first_else_42, Schedule.load(row["schedule"]))
        assert isinstance(got, Raised) and f"raised {got.type}: {got.message}" == row["outcome"]
        assert row["preemptions"] >= 1  # the default order (0 preemptions) puts a first


def test_saved_schedules_are_named_after_module_and_scenario(
        here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # every example's scenario is called ``scenario``: the module keeps their files apart
    rc = _cli.main(["explore", "explore_me.py:fails_when_b_first", "--runs", "40",
                    "--save-dir", str(here / "saved"), "--json", "-"])
    assert rc == 1
    report = json.loads(capsys.readouterr().out)
    rows = [r for r in report["outcomes"] if r["outcome"].startswith("raised")]
    assert rows
    for row in rows:
        assert "explore_me.fails_when_b_first-seed" in Path(row["schedule"]).name


@pytest.mark.parametrize(("target", "shown", "rc"), [
    ("bracketed", "[red]alarm[/red] value [/] here", 0),
    ("raises_bracketed", "raised KeyError: '[/foo] missing'", 1),
])
def test_outcomes_show_as_they_are_not_as_markup(here: Path, capsys: pytest.CaptureFixture[str],
                                                 target: str, shown: str, rc: int) -> None:
    # before: "[/]" ended the command in rich's MarkupError, and "[red]" vanished
    assert _cli.main(["explore", f"explore_me.py:{target}", "--runs", "2"]) == rc
    out = capsys.readouterr().out
    assert shown in out


def test_an_unwritable_save_dir_still_shows_the_table(
        here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: exit 1, no table, and "failed: FileNotFoundError" blamed the scenario
    inside_a_file = here / "explore_me.py" / "saved"
    rc = _cli.main(["explore", "explore_me.py:fails_when_b_first", "--runs", "5",
                    "--save-dir", str(inside_a_file)])
    captured = capsys.readouterr()
    assert rc == 2
    assert "raised AssertionError" in captured.out and "not saved" in captured.out
    assert "cannot save the shrunk schedules to" in captured.err
    assert "failed" not in captured.err


def test_a_depth_beyond_the_most_is_a_usage_error(here: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # before: a depth of 10,000 ran every run, then lost them all to an OverflowError; one of
    # 10**9 tried to draw as many change points
    assert _cli.main(["explore", "explore_me.py:two_callers", "--strategy", "pct",
                      "--depth", str(MAX_DEPTH + 1)]) == 2
    assert f"--depth must be at most {MAX_DEPTH}" in capsys.readouterr().err
