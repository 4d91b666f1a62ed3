"""docs/ARCHITECTURE.md is true: every name in its rule table exists, every rule R1-R34 has a
row, and no module of comsim is over 400 lines."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
TABLE = DOC[DOC.index("## Where each rule is decided"):]
ROWS = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| R(\d+) [^|]*\| (.*) \|$", TABLE,
                                                          re.M)}
NAMES = sorted({n for row in ROWS.values() for n in re.findall(r"`(comsim\.[\w.]+)`", row)})


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_rule_has_a_row() -> None:  # R1-R34: a reader finds where each is decided
    assert sorted(ROWS) == list(range(1, 35))


@pytest.mark.parametrize("dotted", NAMES)
def test_every_name_in_the_table_exists(dotted: str) -> None:
    assert _resolve(dotted) is not None


def test_no_module_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "comsim").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


PRIVATE = re.compile(r"\.(_ready|_scheduled|_selector|_ssock|_csock|_run_once|_clock_resolution"
                     r"|_stopping|_timer_cancelled_count|_signal_handlers|_write_to_self"
                     r"|_process_events|_asyncgens|_get_running_loop|_set_running_loop"
                     r"|_enter_task|_leave_task)\b|asyncio\.\w+\._\w+")


def test_asyncio_private_internals_in_two_modules_only() -> None:
    # issue "one seam": the threaded apartment loop and the virtual-time loop, each with its
    # fallback, and nowhere else
    users = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "comsim").rglob("*.py")
                   if PRIVATE.search(p.read_text()))
    assert users == ["comsim/_runtime/loop.py", "comsim/_runtime/vtloop.py"]
