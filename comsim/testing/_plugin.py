"""comsim's pytest plugin (registered as the entry point ``comsim``).

Mark an ``async def`` test with ``@pytest.mark.comsim`` and it runs on comsim's virtual-time
loop; ask for the ``comsim_runtime`` fixture to get a deterministic ``Runtime`` started inside::

    @pytest.mark.comsim(seeds=range(20))
    async def test_race(comsim_runtime):
        ...

``seeds`` runs the test once per seed (default: seed 0). ``--comsim-seed N`` replays one seed.
A failing test's report says which seed to replay.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

_SEED_KEY = pytest.StashKey[int]()


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("comsim")
    group.addoption("--comsim-seed", action="store", type=int, default=None,
                    help="replay one seed of comsim's deterministic runtime")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "comsim(seeds=range(N)): run an async test on comsim's deterministic runtime "
        "(virtual time), once per seed",
    )


def pytest_generate_tests(metafunc: Any) -> None:
    marker = metafunc.definition.get_closest_marker("comsim")
    if marker is None:
        return
    forced = metafunc.config.getoption("--comsim-seed", None)
    seeds = [forced] if forced is not None else list(marker.kwargs.get("seeds", [0]))
    if "comsim_seed" in metafunc.fixturenames:
        metafunc.parametrize("comsim_seed", seeds, ids=[f"seed{s}" for s in seeds])


@pytest.fixture
def comsim_seed(request: Any) -> int:
    """The seed of this run (parametrized by ``@pytest.mark.comsim(seeds=...)``)."""
    forced = request.config.getoption("--comsim-seed", None)
    return int(getattr(request, "param", forced if forced is not None else 0))


@pytest.fixture
def comsim_runtime(comsim_seed: int) -> Any:
    """A deterministic ``comsim.Runtime``, started inside the test's virtual-time loop."""
    return _Placeholder(comsim_seed)


class _Placeholder:
    def __init__(self, seed: int) -> None:
        self.seed = seed


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: Any) -> Any:
    if pyfuncitem.get_closest_marker("comsim") is None:
        return None
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    from .._runtime.runtime import Runtime
    from . import run

    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    seed = int(kwargs.get("comsim_seed", 0))
    pyfuncitem.stash[_SEED_KEY] = seed

    async def main() -> None:
        placeholder = kwargs.get("comsim_runtime")
        if isinstance(placeholder, _Placeholder):
            async with Runtime(deterministic=True, seed=placeholder.seed) as rt:
                kwargs["comsim_runtime"] = rt
                await fn(**kwargs)
        else:
            await fn(**kwargs)

    run(main)
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SEED_KEY in item.stash:
        seed = item.stash[_SEED_KEY]
        report.sections.append(
            ("comsim", f"deterministic runtime seed {seed}: replay with --comsim-seed {seed}")
        )
