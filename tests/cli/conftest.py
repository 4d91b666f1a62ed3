"""Fixtures of the command-line tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ..testing import scenarios

SCENARIOS = Path(scenarios.__file__)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The exploration tests' scenarios as ``explore_me.py`` in the current directory."""
    shutil.copy(SCENARIOS, tmp_path / "explore_me.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path
