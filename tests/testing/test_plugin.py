"""The pytest plugin as its users meet it: the README's seed sweep under pytest-asyncio's
strict and auto modes, with anyio's plugin, with pytest-xdist and with Hypothesis; seeds from
the marker, the command line and the ini file; failing seeds named with the command that
replays them; usage errors named at once; failing traces written as pictures."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

SWEEP = '''
import anyio, pytest, comsim

class IWork(comsim.Interface):
    async def Work(self) -> str: ...

class Work(comsim.CoClass, IWork):
    async def Work(self):
        await anyio.sleep(0.01)
        return "done"

@pytest.mark.comsim(seeds=range(20))
async def test_cancel_then_finish(comsim_runtime):
    ui, worker = [await comsim_runtime.create_sta(n) for n in ("ui", "worker")]

    async def serve():
        return comsim.marshal_interface(Work(), IWork)

    async def client(stream):
        async with comsim.begin(comsim.unmarshal_interface(stream).Work) as call:
            assert await call.cancel(0) == comsim.hresult.S_OK
            with pytest.raises(comsim.COMError):
                await call.finish()

    await ui.run(client, await worker.run(serve))
'''

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_seed_sweep_under_pytest_asyncio_modes(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makeini(INI + f"asyncio_mode = {mode}\n")
    pytester.makepyfile(test_sweep=SWEEP)
    _run(pytester).assert_outcomes(passed=20)


def test_seed_sweep_with_anyio_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_sweep=SWEEP)
    _run(pytester, "-p", "anyio").assert_outcomes(passed=20)


def test_seed_sweep_with_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makeini(INI)
    pytester.makepyfile(test_sweep=SWEEP)
    result = _run(pytester, "-n", "2")
    result.assert_outcomes(passed=20)  # each seed is an item of its own


def test_hypothesis_examples_each_get_a_fresh_runtime(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_given='''
import pytest
from hypothesis import given, settings, strategies as st

SEEN = []

@pytest.mark.comsim(seeds=range(2))
@settings(max_examples=5, deadline=None)
@given(x=st.integers())
async def test_given(comsim_runtime, comsim_seed, x):
    SEEN.append((id(comsim_runtime), comsim_runtime.seed, comsim_seed))
    await comsim_runtime.create_sta("a")      # a fresh runtime: the name is free again

def test_each_example_had_its_own_runtime():
    assert len(SEEN) == 10
    assert all(rt_seed == seed for _, rt_seed, seed in SEEN)
    assert len({rid for rid, _, _ in SEEN[:5]}) == 5
''')
    _run(pytester).assert_outcomes(passed=3)


def test_failing_seed_of_a_runtime_only_test_names_its_seed(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_fail='''
import pytest

@pytest.mark.comsim(seeds=range(4))
async def test_fails_on_seed_2(comsim_runtime):
    assert comsim_runtime.seed != 2
''')
    result = _run(pytester)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*deterministic runtime seed 2: replay with --comsim-seed 2*",
        "*pytest 'test_fail.py::test_fails_on_seed_2[[]seed2[]]' --comsim-seed 2*",
    ])
    _run(pytester, "test_fail.py::test_fails_on_seed_2[seed2]", "--comsim-seed",
         "2").assert_outcomes(failed=1)


def test_runtime_fixture_without_the_marker_runs_as_seed_0(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_plain='''
import asyncio
import comsim
from comsim.testing import VirtualTimeLoop

async def test_unmarked(comsim_runtime):
    assert isinstance(comsim_runtime, comsim.Runtime)
    assert comsim_runtime.deterministic and comsim_runtime.seed == 0
    assert isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
''')
    _run(pytester).assert_outcomes(passed=1)


def test_sync_test_asking_for_the_runtime_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_sync='''
def test_sync(comsim_runtime):
    pass
''')
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*comsim_runtime needs an async test*async def test_sync*"])


@pytest.mark.parametrize("how", ["option", "ini"])
def test_seeds_from_the_command_line_or_the_ini_file(pytester: pytest.Pytester,
                                                     how: str) -> None:
    pytester.makeini(INI + ("comsim_seeds = 5\n" if how == "ini" else ""))
    pytester.makepyfile(test_seeds='''
import pytest

SEEDS = []

@pytest.mark.comsim
async def test_seeded(comsim_runtime):
    SEEDS.append(comsim_runtime.seed)

@pytest.mark.comsim(seeds=[7])
async def test_own_seeds_win(comsim_runtime):
    assert comsim_runtime.seed == 7

def test_ran_under_range_5():
    assert SEEDS == [0, 1, 2, 3, 4]
''')
    args = ["--comsim-seeds", "5"] if how == "option" else []
    _run(pytester, *args).assert_outcomes(passed=7)


def test_failing_trace_is_written_as_pictures(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_traced='''
import pytest, comsim

class IEcho(comsim.Interface):
    async def Echo(self, x: int) -> int: ...

class Echo(comsim.CoClass, IEcho):
    async def Echo(self, x):
        return x

@pytest.mark.comsim(seeds=[3])
async def test_traced(comsim_runtime):
    a, b = await comsim_runtime.create_sta("a"), await comsim_runtime.create_sta("b")
    async def make():
        return comsim.marshal_interface(Echo(), IEcho)
    stream = await b.run(make)
    async def use():
        return await comsim.unmarshal_interface(stream).Echo(1)
    assert await a.run(use) == 2
''')
    out = pytester.path / "traces"
    result = _run(pytester, "--comsim-trace-dir", str(out))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*trace written to *test_traced*seed3*.mermaid*"])
    mermaid = next(out.glob("*.mermaid")).read_text()
    assert mermaid.startswith("sequenceDiagram") and "Echo" in mermaid
    chrome = json.loads(next(out.glob("*.trace.json")).read_text())
    assert any(e.get("name") == "Echo" and e.get("ph") == "X" for e in chrome["traceEvents"])


RACE = '''
import anyio, pytest, comsim

class ILog(comsim.Interface):
    async def Log(self, who: str) -> int: ...

class Log(comsim.CoClass, ILog):
    def __init__(self):
        super().__init__()
        self.seen = []

    async def Log(self, who):
        self.seen.append(who)
        return len(self.seen)

@pytest.mark.comsim(seeds=range(30))
async def test_a_first(comsim_runtime):
    a, b, c = [await comsim_runtime.create_sta(n) for n in "abc"]
    obj = {}

    async def serve():
        obj["log"] = Log()
        return comsim.marshal_interface(obj["log"], ILog, flags=comsim.MSHLFLAGS.TABLESTRONG)

    stream = await c.run(serve)

    async def caller(name):
        proxy = comsim.unmarshal_interface(stream, ILog)
        for i in range(3):
            await proxy.Log(f"{name}{i}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run, caller, "a")
        tg.start_soon(b.run, caller, "b")
    assert obj["log"].seen[0] == "a0", obj["log"].seen
'''


def test_a_failing_schedule_is_shrunk_saved_and_replayed(pytester: pytest.Pytester) -> None:
    # API: a failing plugin test saves the shrunk schedule and says --comsim-replay PATH
    pytester.makeini(INI)
    pytester.makepyfile(test_race=RACE)
    result = pytester.runpytest_subprocess("-q", "-x")
    result.assert_outcomes(failed=1, passed=result.parseoutcomes().get("passed", 0))
    out = result.stdout.str()
    line = next(ln for ln in out.splitlines() if "--comsim-replay" in ln)
    path = line.rsplit("--comsim-replay ", 1)[1].strip().strip("'")
    saved = json.loads(open(path).read())
    assert saved["format"] == "comsim-schedule"
    assert "schedule saved (1 preemptions, shrunk from" in out or \
        "schedule saved (1 preemptions, as it ran" in out
    # the saved schedule fails the test again, whatever the seed would say
    replayed = pytester.runpytest_subprocess("-q", "--comsim-replay", path)
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(["*AssertionError*"])
    assert "shrunk from" not in replayed.stdout.str()  # a replay is not shrunk again


OTHER = """
import pytest


@pytest.mark.comsim(seeds=range(1))
async def test_other(comsim_runtime):
    a = await comsim_runtime.create_sta("x")

    async def unit():
        return 1

    assert await a.run(unit) == 1
"""


def test_replaying_a_schedule_of_another_test_warns(pytester: pytest.Pytester) -> None:
    # as replay() does; before, the test ran as it went, silently
    pytester.makeini(INI)
    pytester.makepyfile(test_race=RACE, test_other=OTHER)
    result = pytester.runpytest_subprocess("-q", "-x", "test_race.py")
    line = next(ln for ln in result.stdout.str().splitlines() if "--comsim-replay" in ln)
    path = line.rsplit("--comsim-replay ", 1)[1].strip().strip("'")
    own = pytester.runpytest_subprocess("-q", "-W", "error::RuntimeWarning", "test_race.py",
                                        "--comsim-replay", path)
    own.assert_outcomes(failed=1)  # its own test: followed, no warning
    assert "did not follow" not in own.stdout.str()
    other = pytester.runpytest_subprocess("-q", "test_other.py", "--comsim-replay", path)
    other.assert_outcomes(passed=1, warnings=1)
    other.stdout.fnmatch_lines(["*--comsim-replay: the run of test_other.py::test_other*did "
                                "not follow the schedule*"])


def test_replaying_a_missing_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_race=RACE)
    result = pytester.runpytest_subprocess("-q", "--comsim-replay", "nowhere.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--comsim-replay nowhere.json*"])
