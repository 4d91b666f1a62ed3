"""comsim's pytest plugin (registered as the entry point ``comsim``).

Mark an ``async def`` test with ``@pytest.mark.comsim`` and it runs on comsim's virtual-time
loop; ask for the ``comsim_runtime`` fixture to get a deterministic ``Runtime`` started inside::

    @pytest.mark.comsim(seeds=range(20))
    async def test_race(comsim_runtime):
        ...

The plugin runs on pytest-asyncio's own mechanisms rather than calling tests itself: a marked
test (or one that asks for ``comsim_runtime``) is an asyncio test whose loop comes from the
``pytest_asyncio_loop_factories`` hook, and ``comsim_runtime`` is an async fixture entered on
that loop. So it behaves the same in pytest-asyncio's strict and auto modes, with anyio's
plugin loaded, with pytest-xdist (each seed is an item of its own) and with Hypothesis.

- ``seeds=`` runs the test once per seed; without it, ``--comsim-seeds N`` (ini:
  ``comsim_seeds``) runs ``range(N)``, else seed 0. ``--comsim-seed N`` replays one seed.
- A failing test's report names its seed and the exact command that replays it.
- ``--comsim-trace-dir DIR``: a failing test's trace is written there as ``<test id>.mermaid``
  and ``<test id>.trace.json``, and the report names the files.
- A failing test's schedule (every decision of the deterministic pump) is shrunk to the fewest
  preemptions that still fail the same way, by running the test body again with the same
  values of its other fixtures (at most ``--comsim-shrink-runs`` runs, default 200; 0: do not
  shrink), and saved in pytest's cache directory; the report says ``--comsim-replay PATH``,
  which runs the test under that schedule.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import operator
import re
import shlex
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .._runtime.vtloop import VirtualTimeLoop

_TRACE_KEY = pytest.StashKey[Any]()
_RUNTIME_KEY = pytest.StashKey[Any]()
#: the fixture a test asks for to get a deterministic runtime
RUNTIME_FIXTURE = "comsim_runtime"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("comsim")
    group.addoption("--comsim-seed", action="store", type=int, default=None,
                    help="replay one seed of comsim's deterministic runtime")
    group.addoption("--comsim-seeds", action="store", type=int, default=None,
                    help="run comsim tests whose marker gives no seeds under range(N)")
    group.addoption("--comsim-trace-dir", action="store", default=None,
                    help="write a failing comsim test's trace there (Mermaid and Chrome JSON)")
    group.addoption("--comsim-replay", action="store", default=None, metavar="PATH",
                    help="run comsim tests under the schedule saved in PATH (a failing "
                         "test's report names it)")
    group.addoption("--comsim-shrink-runs", action="store", type=int, default=200,
                    metavar="N", help="runs spent shrinking a failing test's schedule "
                                      "(default 200; 0: save it as it ran)")
    parser.addini("comsim_seeds", "run comsim tests whose marker gives no seeds under "
                                  "range(N)", default=None)


def pytest_configure(config: Any) -> None:
    _check_options(config)
    path = config.getoption("--comsim-replay", None)
    if path is not None:
        from .._runtime.schedule import Schedule

        try:
            config._comsim_replay = Schedule.load(path)
        except (OSError, ValueError) as exc:
            raise pytest.UsageError(
                f"--comsim-replay {path}: no comsim schedule can be read from it ({exc}); give "
                f"the file a failing comsim test's report names") from None
    config.addinivalue_line(
        "markers",
        "comsim(seeds=range(N)): run an async test on comsim's deterministic runtime "
        "(virtual time), once per seed",
    )


def _check_options(config: Any) -> None:
    """Bad values of comsim's options are usage errors, named at once."""
    n = config.getoption("--comsim-seeds", None)
    if n is not None and n < 1:
        raise pytest.UsageError(f"--comsim-seeds {n}: give N >= 1 (comsim tests run under "
                                f"range(N))")
    ini = config.getini("comsim_seeds")
    if ini not in (None, "", []):
        try:
            if int(ini) < 1:
                raise ValueError
        except ValueError:
            raise pytest.UsageError(f"ini option comsim_seeds = {ini}: give an int N >= 1 "
                                    f"(comsim tests run under range(N))") from None
    runs = config.getoption("--comsim-shrink-runs", 200)
    if runs is not None and runs < 0:
        raise pytest.UsageError(f"--comsim-shrink-runs {runs}: give N >= 0 (0: save a failing "
                                f"test's schedule as it ran)")
    trace_dir = config.getoption("--comsim-trace-dir", None)
    if trace_dir is not None and Path(trace_dir).exists() and not Path(trace_dir).is_dir():
        raise pytest.UsageError(f"--comsim-trace-dir {trace_dir}: not a directory; give a "
                                f"directory (made if missing)")


def _marker_seeds(name: str, marker: Any) -> list[int] | None:
    """The seeds ``@pytest.mark.comsim(seeds=...)`` gives (None: none given); a marker misused
    fails the collection of the test with a message that names the fix."""
    fix = "e.g. @pytest.mark.comsim(seeds=range(20))"
    if marker.args or set(marker.kwargs) - {"seeds"}:
        given = ", ".join([*map(repr, marker.args),
                           *(f"{k}={v!r}" for k, v in marker.kwargs.items())])
        pytest.fail(f"{name}: @pytest.mark.comsim({given}): the marker takes only the keyword "
                    f"seeds=, an iterable of ints: {fix}", pytrace=False)
    if "seeds" not in marker.kwargs:
        return None
    given = marker.kwargs["seeds"]
    items: list[Any] = []
    try:
        items = list(given)
        seeds = [operator.index(s) for s in items if not isinstance(s, bool)]
    except TypeError:
        seeds = []
    if not seeds or len(seeds) < len(items):
        pytest.fail(f"{name}: @pytest.mark.comsim(seeds={given!r}): seeds must be a non-empty "
                    f"iterable of ints: {fix}", pytrace=False)
    return seeds


def _is_comsim_test(node: Any) -> bool:
    return node.get_closest_marker("comsim") is not None


# ------------------------------------------------------------------ collection
@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> Iterator[None]:
    """A comsim test is an asyncio test: it gets the ``asyncio`` mark before pytest-asyncio
    looks at it (strict mode would pass it by otherwise), and a test that asks for
    ``comsim_runtime`` without the mark runs as if marked (seed 0)."""
    if callable(obj) and _is_async_function(obj):
        marks = list(getattr(obj, "pytestmark", []))
        names = {m.name for m in marks}
        inherited = collector.get_closest_marker("comsim") is not None
        if "comsim" in names or inherited or RUNTIME_FIXTURE in _argnames(obj):
            if "comsim" not in names and not inherited:
                marks.append(pytest.mark.comsim.mark)
            if "asyncio" not in names and collector.get_closest_marker("asyncio") is None:
                marks.append(pytest.mark.asyncio.mark)
            obj.pytestmark = marks
            if getattr(obj, "hypothesis", None) is not None and RUNTIME_FIXTURE in _argnames(obj):
                _fresh_runtime_per_example(obj)
    yield


#: the seed of the comsim test running now (for Hypothesis examples, which take no fixture)
_SEED: contextvars.ContextVar[int] = contextvars.ContextVar("comsim_test_seed", default=0)


def _fresh_runtime_per_example(test: Any) -> None:
    """Under ``@given``, each example gets a fresh deterministic runtime: the inner test enters
    one for each example and passes it as ``comsim_runtime``."""
    inner = test.hypothesis.inner_test

    @functools.wraps(inner)
    async def fresh(*args: Any, **kwargs: Any) -> Any:
        from .._runtime.runtime import Runtime

        async with Runtime(deterministic=True, seed=_SEED.get()) as rt:
            kwargs[RUNTIME_FIXTURE] = rt
            return await inner(*args, **kwargs)

    test.hypothesis.inner_test = fresh
    # the fixture itself gives such a test nothing (``comsim_runtime``), so Hypothesis's check
    # against function-scoped fixtures shared by examples does not apply to it
    from hypothesis import HealthCheck, settings

    current = getattr(test, "_hypothesis_internal_use_settings", None) or settings()
    test._hypothesis_internal_use_settings = settings(
        current, suppress_health_check=[*current.suppress_health_check,
                                        HealthCheck.function_scoped_fixture])


def _argnames(obj: Any) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return ()


@pytest.hookimpl(tryfirst=True)
def pytest_asyncio_loop_factories(config: Any, item: Any) -> Any:
    """comsim tests run on the virtual-time loop; other tests are left to other hooks."""
    if _is_comsim_test(item):
        return {"comsim": VirtualTimeLoop}
    return None


def _replay_schedule(config: Any) -> Any:
    """The schedule of ``--comsim-replay PATH`` (read by ``pytest_configure``), or None."""
    return getattr(config, "_comsim_replay", None)


def _seeds(config: Any, marker: Any, name: str) -> list[int]:
    given = _marker_seeds(name, marker)
    replay = _replay_schedule(config)
    if replay is not None:
        return [replay.seed if replay.seed is not None else 0]
    forced = config.getoption("--comsim-seed", None)
    if forced is not None:
        return [int(forced)]
    if given is not None:
        return given
    n = config.getoption("--comsim-seeds", None)
    if n is None:
        ini = config.getini("comsim_seeds")
        n = int(ini) if ini not in (None, "", []) else None
    return list(range(int(n))) if n is not None else [0]


def pytest_generate_tests(metafunc: Any) -> None:
    marker = metafunc.definition.get_closest_marker("comsim")
    if marker is None:
        return
    if "comsim_seed" not in metafunc.fixturenames:
        metafunc.fixturenames.append("comsim_seed")
    seeds = _seeds(metafunc.config, marker, metafunc.definition.nodeid)
    metafunc.parametrize("comsim_seed", seeds, ids=[f"seed{s}" for s in seeds])


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """A synchronous test that asks for ``comsim_runtime`` is a usage error, named at once."""
    for item in items:
        if RUNTIME_FIXTURE in getattr(item, "fixturenames", ()) and not _is_async(item):
            item.fixturenames.insert(0, "_comsim_sync_test")  # set up before the runtime


def _is_async(item: Any) -> bool:
    return _is_async_function(getattr(item, "obj", None))


def _is_async_function(obj: Any) -> bool:
    """An ``async def`` test, also under Hypothesis's ``@given`` (its inner test)."""
    inner = getattr(getattr(obj, "hypothesis", None), "inner_test", None)
    return inspect.iscoroutinefunction(inner or obj)


@pytest.fixture
def _comsim_sync_test(request: Any) -> None:
    pytest.fail(f"{request.node.name}: comsim_runtime needs an async test; write "
                f"`async def {request.node.originalname}(comsim_runtime): ...`", pytrace=False)


# ------------------------------------------------------------------ fixtures
@pytest.fixture
def comsim_seed(request: Any) -> int:
    """The seed of this run (``@pytest.mark.comsim(seeds=...)``, ``--comsim-seeds``,
    ``--comsim-seed``)."""
    return int(getattr(request, "param", 0))


def _runtime_fixture() -> Any:
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - pytest-asyncio is what runs comsim tests
        @pytest.fixture(name=RUNTIME_FIXTURE)
        def missing(comsim_seed: int) -> Any:
            pytest.fail("comsim_runtime needs pytest-asyncio: pip install pytest-asyncio",
                        pytrace=False)

        return missing

    @pytest_asyncio.fixture
    async def comsim_runtime(request: Any, comsim_seed: int) -> AsyncIterator[Any]:
        """A deterministic ``comsim.Runtime`` under this test's seed, entered on the test's
        virtual-time loop and left after the test. (Under ``@given`` each example gets its own
        instead, and this gives None.)"""
        from .._runtime.runtime import Runtime

        if getattr(getattr(request.node, "obj", None), "hypothesis", None) is not None:
            yield None
            return
        schedule = _replay_schedule(request.config)
        options: dict[str, Any] = ({"schedule": schedule} if schedule is not None
                                   else {"seed": comsim_seed})
        async with Runtime(deterministic=True, **options) as rt:
            request.node.stash[_RUNTIME_KEY] = rt
            yield rt
        if schedule is not None:
            from ._schedules import warn_unless_followed

            warn_unless_followed(request.node.nodeid, schedule, rt.schedule)

    return comsim_runtime


comsim_runtime = _runtime_fixture()



# ------------------------------------------------------------------ running and reporting
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: Any) -> Iterator[None]:
    if not _is_comsim_test(item):
        yield
        return
    token = _SEED.set(_seed_of(item))
    try:
        if item.config.getoption("--comsim-trace-dir", None) is None:
            yield
            return
        from ._trace import capture_trace

        with capture_trace() as events:
            item.stash[_TRACE_KEY] = events
            yield
    finally:
        _SEED.reset(token)


def _seed_of(item: Any) -> int:
    return int(getattr(getattr(item, "callspec", None), "params", {}).get("comsim_seed", 0))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed or not _is_comsim_test(item):
        return
    seed = _seed_of(item)
    command = f"pytest {shlex.quote(item.nodeid)} --comsim-seed {seed}"
    lines = [f"deterministic runtime seed {seed}: replay with --comsim-seed {seed}",
             f"    {command}"]
    events = item.stash.get(_TRACE_KEY, None)
    if events is not None and call.when == "call":
        lines += _write_trace(item, events)
    rt = item.stash.get(_RUNTIME_KEY, None)
    if rt is not None and call.when == "call" and call.excinfo is not None:
        lines += _save_schedule(item, rt, call.excinfo.type)
    report.sections.append(("comsim", "\n".join(lines)))


def _save_schedule(item: Any, rt: Any, kind: type[BaseException]) -> list[str]:
    """Shrink the failing run's schedule (unless replaying one) and save it."""
    from ._schedules import save_failing

    schedule = rt.schedule
    if schedule is None:
        return []
    replaying = _replay_schedule(item.config) is not None
    runs = 0 if replaying else max(0, item.config.getoption("--comsim-shrink-runs", 200) or 0)
    try:
        path, small = save_failing(item, schedule, kind, runs, RUNTIME_FIXTURE)
    except OSError as exc:
        return [f"schedule not saved: {exc}"]
    command = f"pytest {shlex.quote(item.nodeid)} --comsim-replay {shlex.quote(str(path))}"
    how = ("as it ran" if small is schedule else
           f"shrunk from {schedule.preemptions} preemptions")
    return [f"schedule saved ({small.preemptions} preemptions, {how}): {path}",
            f"    {command}"]


def _write_trace(item: Any, events: Any) -> list[str]:
    try:
        return _write_pictures(item, events)
    except OSError as exc:
        return [f"trace not written: {exc}"]


def _write_pictures(item: Any, events: Any) -> list[str]:
    directory = Path(item.config.getoption("--comsim-trace-dir"))
    directory.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.\[\]-]+", "_", item.nodeid).strip("_")
    written = []
    to_mermaid = getattr(events, "to_mermaid", None)
    if to_mermaid is not None:
        path = directory / f"{stem}.mermaid"
        path.write_text(to_mermaid())
        written.append(path)
    to_chrome = getattr(events, "to_chrome_trace", None)
    if to_chrome is not None:
        path = directory / f"{stem}.trace.json"
        path.write_text(json.dumps(to_chrome()))
        written.append(path)
    return [f"trace written to {p}" for p in written]
