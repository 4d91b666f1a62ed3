"""comsim's pytest plugin (registered as the entry point ``comsim``)."""

from __future__ import annotations

from typing import Any


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("comsim")
    group.addoption("--comsim-seed", action="store", type=int, default=None,
                    help="replay one seed of comsim's deterministic runtime")
