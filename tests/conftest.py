"""Shared fixtures: every behavioural test runs on both runtimes.

Async tests are run twice by pytest-asyncio's loop-factory hook: on a plain asyncio loop with
the threaded runtime (``[threaded]``), and on comsim's ``VirtualTimeLoop`` with the
deterministic runtime (``[deterministic]``), where time-outs and grace periods cost no real
time. Mark a test ``@pytest.mark.threaded_only`` when it is about OS threads themselves, or
``@pytest.mark.deterministic_only`` when it needs virtual time or seeded replay.

- ``rt``: a running ``comsim.Runtime`` of the test's kind.
- ``kind``: "threaded" or "deterministic".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import pytest
import pytest_asyncio

import comsim
from comsim.testing import VirtualTimeLoop

_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "threaded": asyncio.new_event_loop,
    "deterministic": VirtualTimeLoop,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "threaded_only: run only on the threaded runtime")
    config.addinivalue_line("markers", "deterministic_only: run only on the deterministic runtime")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.get_closest_marker("threaded_only"):
        return {"threaded": _FACTORIES["threaded"]}
    if item.get_closest_marker("deterministic_only"):
        return {"deterministic": _FACTORIES["deterministic"]}
    return _FACTORIES


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    opt = request.config.getoption("--comsim-seed", None)
    return int(opt) if opt is not None else 0


@pytest_asyncio.fixture
async def kind() -> str:
    """Which runtime the running test uses (read from its loop)."""
    det = isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
    return "deterministic" if det else "threaded"


@pytest_asyncio.fixture
async def rt(seed: int) -> AsyncIterator[comsim.Runtime]:
    det = isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
    async with comsim.Runtime(deterministic=det, seed=seed if det else None) as runtime:
        yield runtime
