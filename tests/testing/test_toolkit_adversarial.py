"""The testing toolkit misused on purpose, as its users would: bad schedule files, schedules
replayed on the wrong scenario, ``shrink`` with a ``keep`` that fails, scenarios that misbehave
(unhashable or unpicklable outcomes, interrupts, leftover tasks, runtimes and explorations
inside them, deadlocks across many apartments), traces under an application's structlog, the
pytest plugin's options and marker misused, the command line given bad input.

The standard: misuse and bad input get a clear ``comsim.COMError`` (E_INVALIDARG) naming what
was wrong and what to do; whatever user code raises becomes an outcome or a clear error; nothing
hangs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import pickle
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

import comsim
import comsim.testing
from comsim import hresult as hr
from comsim._cli import main as cli
from comsim.testing import (
    Deadlock,
    Raised,
    Schedule,
    Trace,
    capture_trace,
    explore,
    replay,
    shrink,
)
from comsim.testing._deadlock import MAX_CYCLES

from .scenarios import two_callers

pytest_plugins = ["pytester"]


# ------------------------------------------------------------------ scenarios
async def one_sta(rt: comsim.Runtime) -> int:
    await rt.create_sta("a")
    return 1


def _recorded(scenario: Any, seed: int) -> Schedule:
    """The schedule of ``scenario``'s run under ``seed`` (as explore records it)."""
    found = explore(scenario, [seed])
    return next(iter(found.schedules.values()))


@contextlib.contextmanager
def collected() -> Iterator[None]:
    """Garbage a failing run leaves (coroutines never awaited) is collected here, not during
    a later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "coroutine ... never awaited"
        try:
            yield
        finally:
            gc.collect()


# ------------------------------------------------------------------ schedule files
BAD_FILES = {
    "truncated": '{"format": "comsim-schedule", "version": 1, "seed": 0, "decisions": [0, 1',
    "another version": '{"format": "comsim-schedule", "version": 2, "seed": 0, "decisions": []}',
    "decisions of the wrong type": '{"format": "comsim-schedule", "version": 1, "seed": 0, '
                                   '"decisions": ["0", true]}',
    "a decision below -1": '{"format": "comsim-schedule", "version": 1, "seed": 0, '
                           '"decisions": [-2]}',
    "a seed of the wrong type": '{"format": "comsim-schedule", "version": 1, "seed": 1.5, '
                                '"decisions": []}',
    "no schedule": "[0, 1, 2]",
}


@pytest.mark.parametrize("text", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_schedule_file_is_refused_as_documented(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError):  # Schedule.load's documented error
        Schedule.load(path)


@pytest.mark.parametrize("data", [*(t.encode() for t in BAD_FILES.values()), b"\xff\xfe"],
                         ids=[*BAD_FILES, "binary"])
def test_a_bad_schedule_file_is_a_com_error_naming_the_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    with pytest.raises(comsim.COMError) as info:
        Schedule.load(path)
    assert info.value.hresult == hr.E_INVALIDARG and str(path) in str(info.value)


def test_a_huge_schedule_round_trips_and_a_replay_says_it_did_not_fit(tmp_path: Path) -> None:
    huge = Schedule([1, -1] * 100_000, seed=3)
    huge.save(tmp_path / "huge.json")
    loaded = Schedule.load(tmp_path / "huge.json")
    assert loaded == huge and loaded.preemptions == 200_000
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match="did not follow the schedule"):
        assert replay(one_sta, loaded) == 1
    assert time.monotonic() - start < 10.0  # linear in the schedule's length, not quadratic


def test_a_schedule_of_another_scenario_replays_with_a_warning() -> None:
    # (choice) a replay gives the run's outcome as it went, and warns that it did not follow
    # the schedule: after a fix the run may rightly go another way, so it is no error
    sched = _recorded(two_callers, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own scenario: no warning
        mine = replay(two_callers, sched)
    assert isinstance(mine, tuple)
    with pytest.warns(RuntimeWarning, match=r"one_sta did not follow the schedule.*another "
                                            r"scenario"):
        assert replay(one_sta, sched) == 1
    picky = Schedule([0, 0, 7], seed=0)  # a decision past the messages pending there
    with pytest.warns(RuntimeWarning, match="decision 2 picks message 7"):
        assert isinstance(replay(two_callers, picky), tuple)


@pytest.mark.parametrize("bad", ["saved.json", [0, 1], None])
def test_replay_and_shrink_want_a_schedule(bad: Any) -> None:
    with pytest.raises(comsim.COMError, match=r"Schedule\.load\(path\)") as info:
        replay(one_sta, bad)
    assert info.value.hresult == hr.E_INVALIDARG and isinstance(info.value, TypeError)
    with pytest.raises(comsim.COMError, match=r"schedule must be a comsim\.testing\.Schedule"):
        shrink(one_sta, bad, keep=bool)


def not_async(rt: comsim.Runtime) -> int:
    return 5


@pytest.mark.parametrize("scenario", [None, "one_sta", not_async])
def test_replay_of_what_is_no_scenario_is_an_error_not_an_outcome(scenario: Any) -> None:
    # before: replay gave Raised('TypeError', ...) as if the scenario had raised
    with pytest.raises(comsim.COMError, match=r"async def scenario\(rt\)") as info:
        replay(scenario, Schedule([]))
    assert info.value.hresult == hr.E_INVALIDARG
    with pytest.raises(comsim.COMError, match=r"async def scenario\(rt\)"):
        shrink(scenario, Schedule([]), keep=bool)


# ------------------------------------------------------------------ shrink
def test_shrink_with_a_keep_never_satisfied_says_what_to_do() -> None:
    sched = _recorded(two_callers, 4)
    with pytest.raises(comsim.COMError, match=r"does not satisfy keep.*found\.schedules") as info:
        shrink(two_callers, sched, keep=lambda outcome: False)
    assert info.value.hresult == hr.E_INVALIDARG
    assert isinstance(info.value, ValueError)  # as before: explore and the plugin catch it


def test_what_keep_raises_propagates_unchanged() -> None:
    def keep(outcome: Any) -> bool:
        raise KeyError("keep's own bug")

    with pytest.raises(KeyError, match="keep's own bug"):
        shrink(two_callers, _recorded(two_callers, 4), keep=keep)


@pytest.mark.parametrize(("keep", "max_runs", "kind"), [
    (None, 10, TypeError), ("yes", 10, TypeError), (bool, 0, ValueError),
    (bool, -5, ValueError), (bool, "10", TypeError), (bool, True, TypeError)])
def test_shrink_refuses_bad_arguments(keep: Any, max_runs: Any, kind: type) -> None:
    with pytest.raises(comsim.COMError) as info:
        shrink(one_sta, Schedule([1]), keep=keep, max_runs=max_runs)
    assert info.value.hresult == hr.E_INVALIDARG and isinstance(info.value, kind)


_DRIFT = itertools.count()


async def drifting(rt: comsim.Runtime) -> int:
    """Not deterministic: global state carried from run to run."""
    await rt.create_sta("a")
    return next(_DRIFT)


def test_shrinking_a_scenario_that_is_not_deterministic_says_so() -> None:
    sched = Schedule([], seed=0)
    first = replay(drifting, sched)
    with pytest.raises(comsim.COMError, match="deterministic: no real clock"):
        shrink(drifting, sched, keep=lambda outcome: outcome == first)


# ------------------------------------------------------------------ scenarios that misbehave
async def unhashable(rt: comsim.Runtime) -> list[int]:
    await rt.create_sta("a")
    return [1, 2]


def test_unhashable_outcomes_are_their_repr_with_and_without_workers() -> None:
    one = explore(unhashable, range(3))
    assert dict(one) == {"[1, 2]": 0} and one.counts == {"[1, 2]": 3}
    two = explore(unhashable, range(3), workers=2)
    assert dict(two) == dict(one) and two.counts == one.counts


async def lock_outcome(rt: comsim.Runtime) -> Any:
    await rt.create_sta("a")
    return threading.Lock()


def test_an_unpicklable_outcome_with_workers_is_a_clear_error() -> None:
    assert len(explore(lock_outcome, range(2))) == 2  # one process: fine
    with pytest.raises(comsim.COMError, match="workers") as info:
        explore(lock_outcome, range(2), workers=2)
    assert info.value.hresult == hr.E_INVALIDARG


async def interrupted(rt: comsim.Runtime) -> None:
    await rt.create_sta("a")
    raise KeyboardInterrupt


def test_an_interrupt_stops_explore_and_the_next_explore_works() -> None:
    with pytest.raises(KeyboardInterrupt):
        explore(interrupted, range(3))
    assert dict(explore(one_sta, range(3))) == {1: 0}


def _raising(exc: BaseException) -> Any:
    async def scenario(rt: comsim.Runtime) -> None:
        await rt.create_sta("a")
        raise exc

    return scenario


@pytest.mark.parametrize("exc", [SystemExit(3), GeneratorExit(), asyncio.CancelledError()],
                         ids=lambda e: type(e).__name__)
def test_a_scenario_raising_a_base_exception_is_an_outcome(exc: BaseException,
                                                            tmp_path: Path) -> None:
    scenario = _raising(exc)
    found = explore(scenario, range(2), keep_going=True)
    assert dict(found) == {Raised(type(exc).__name__, str(exc)): 0}
    with pytest.raises(Exception, match="seed 0") as info:
        explore(scenario, range(2), save_dir=tmp_path)
    assert info.value.__cause__ is not None or isinstance(info.value, type(exc))


async def threads_and_sleeps(rt: comsim.Runtime) -> int:
    await rt.create_sta("a")
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[int] = loop.create_future()
    worker = threading.Thread(target=loop.call_soon_threadsafe, args=(answer.set_result, 7))
    worker.start()
    time.sleep(0.001)  # blocks the loop for real: no harm, no virtual time
    got = await answer  # posted by a thread the loop cannot see, within its grace
    worker.join()
    return got + int(loop.time())


def test_real_threads_and_time_sleep_are_no_deadlock() -> None:
    assert dict(explore(threads_and_sleeps, range(3))) == {7: 0}


async def leaves_a_task(rt: comsim.Runtime) -> int:
    async def forever() -> None:
        await asyncio.sleep(1e9)

    asyncio.get_running_loop().create_task(forever())
    await rt.create_sta("a")
    return 1


def test_a_task_left_running_is_cleaned_up_between_runs() -> None:
    found = explore(leaves_a_task, range(4))
    assert dict(found) == {1: 0} and found.runs == 4


_STUBBORN = {"turns": 0}
STUBBORN_NET = 20_000  # the test's own safety net: the task gives up after so many turns


async def leaves_a_stubborn_task(rt: comsim.Runtime) -> int:
    async def ignores_cancel() -> None:
        while _STUBBORN["turns"] < STUBBORN_NET:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                pass
            _STUBBORN["turns"] += 1

    asyncio.get_running_loop().create_task(ignores_cancel())
    return 1


def test_a_task_that_ignores_cancellation_does_not_stall_the_next_run() -> None:
    _STUBBORN["turns"] = 0
    try:
        with pytest.warns(RuntimeWarning, match="ignores its cancellation"):
            found = explore(leaves_a_stubborn_task, range(2))
        assert dict(found) == {1: 0}
        assert _STUBBORN["turns"] < 1_000  # left behind, not waited for until its net
    finally:
        _STUBBORN["turns"] = STUBBORN_NET  # the task left by the last run ends when woken


async def second_runtime(rt: comsim.Runtime) -> tuple[str, ...]:
    async with comsim.Runtime(deterministic=True, seed=1) as inner:
        await inner.create_sta("a")
        return await two_callers(rt)


def test_a_second_runtime_inside_a_scenario_replays() -> None:
    found = explore(second_runtime, range(20))
    for outcome, sched in found.schedules.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert replay(second_runtime, sched) == outcome


async def nested_explore(rt: comsim.Runtime) -> int:
    return len(explore(one_sta, range(2)))


@pytest.mark.parametrize("how", ["nested in a scenario", "explore in async code",
                                 "replay in async code"])
def test_explore_inside_a_running_loop_is_a_clear_error(how: str) -> None:
    async def in_async_code() -> Any:
        if how == "replay in async code":
            return replay(one_sta, Schedule([]))
        return explore(one_sta, range(2))

    with collected():
        if how == "nested in a scenario":  # the inner explore's error is the run's outcome
            (outcome,) = explore(nested_explore, range(1), keep_going=True)
            assert isinstance(outcome, Raised) and "synchronous" in outcome.message
            return
        with pytest.raises(comsim.COMError, match="synchronous") as info:
            asyncio.run(in_async_code())
    assert info.value.hresult == hr.E_INVALIDARG


@pytest.mark.parametrize("kwargs", [{"seeds": 5}, {"depth": "3"}, {"workers": 2.5}],
                         ids=["seeds=5", "depth='3'", "workers=2.5"])
def test_explore_arguments_of_the_wrong_type(kwargs: dict[str, Any]) -> None:
    with pytest.raises(comsim.COMError, match=f"explore: {next(iter(kwargs))}") as info:
        explore(one_sta, **{"seeds": range(2), **kwargs})
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("kwargs", [{"until": 5}, {"executor": object()},
                                    {"save_dir": 5}, {"keep_going": "yes"}],
                         ids=["until=5", "executor=object()", "save_dir=5", "keep_going='yes'"])
def test_explore_refuses_bad_keywords_before_any_run(kwargs: dict[str, Any]) -> None:
    ran: list[int] = []

    async def counted(rt: comsim.Runtime) -> int:
        ran.append(1)
        return 1

    with pytest.raises(comsim.COMError, match=f"explore: {next(iter(kwargs))} must") as info:
        explore(counted, range(2), **kwargs)
    assert isinstance(info.value, TypeError) and info.value.hresult == hr.E_INVALIDARG
    assert ran == []  # refused up front, not on the first run or the first block


@pytest.mark.parametrize(("decisions", "seed", "kind"), [
    (["x"], None, TypeError), ([1.5], None, TypeError), ([True], None, TypeError),
    (5, None, TypeError), ([0, -2], None, ValueError), ([0], "7", TypeError),
    ([0], 1.0, TypeError)])
def test_a_schedule_made_by_hand_is_checked_as_a_loaded_one(decisions: Any, seed: Any,
                                                          kind: type) -> None:
    with pytest.raises(comsim.COMError, match="Schedule: ") as info:
        Schedule(decisions, seed)
    assert isinstance(info.value, kind) and info.value.hresult == hr.E_INVALIDARG


def test_a_schedule_takes_any_sequence_of_ints() -> None:
    sched = Schedule((d for d in (0, -1, 2)), seed=3)
    assert sched.decisions == [0, -1, 2] and sched.preemptions == 2
    assert Schedule.from_json(sched.to_json()) == sched


def test_explore_of_a_plain_function_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(comsim.COMError, match=r"explore: .*async def"):
        explore(not_async, range(2), keep_going=True)


_PULLED = {"seeds": 0}


def counted_seeds() -> Iterator[int]:
    for seed in range(10_000):  # for ever, as far as the test can tell
        _PULLED["seeds"] += 1
        yield seed


def test_explore_takes_seeds_lazily() -> None:
    _PULLED["seeds"] = 0
    found = explore(one_sta, counted_seeds(), until=lambda f: f.runs >= 3)
    assert found.runs == 3 and _PULLED["seeds"] <= 64


async def fails(rt: comsim.Runtime) -> None:
    await rt.create_sta("a")
    raise ValueError("the scenario's own failure")


def test_a_bad_save_dir_does_not_hide_the_scenario_failure(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ValueError, match=r"the scenario's own failure|save_dir"):
        explore(fails, range(2), save_dir=not_a_dir)


# ------------------------------------------------------------------ deadlocks
class ISink(comsim.Interface):
    async def Sink(self) -> None: ...


class Sink(comsim.CoClass, ISink):
    async def Sink(self) -> None:
        await anyio.Event().wait()  # blocks its STA (a non-COM await, R2)


class INode(comsim.Interface):
    async def Fan(self, to: int) -> None: ...
    async def Wait(self) -> None: ...


class Node(comsim.CoClass, INode):
    def __init__(self, streams: dict[Any, comsim.MarshalStream]) -> None:
        super().__init__()
        self.streams = streams

    async def Fan(self, to: int) -> None:  # a COM wait on node ``to``
        await comsim.unmarshal_interface(self.streams[to], INode).Wait()

    async def Wait(self) -> None:  # a COM wait on the sink
        await comsim.unmarshal_interface(self.streams["sink"], ISink).Sink()


async def mesh(rt: comsim.Runtime, n: int) -> None:
    """n STAs, each with units waiting on every other (re-entrant COM waits, R2), all ending
    on a sink STA blocked for ever: the wait-for graph among them is complete."""
    strong = comsim.MSHLFLAGS.TABLESTRONG
    streams: dict[Any, comsim.MarshalStream] = {}

    async def make_sink() -> comsim.MarshalStream:
        return comsim.marshal_interface(Sink(), ISink, flags=strong)

    async def make_node() -> comsim.MarshalStream:
        return comsim.marshal_interface(Node(streams), INode, flags=strong)

    streams["sink"] = await (await rt.create_sta("sink")).run(make_sink)
    for i in range(n):
        streams[i] = await (await rt.create_sta(f"S{i}")).run(make_node)

    async def fan_out() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                node = comsim.unmarshal_interface(streams[i], INode)
                for j in range(n):
                    if j != i:
                        tg.start_soon(node.Fan, j)

    await rt.mta.run(fan_out)


def test_a_deadlock_across_many_apartments_is_reported_at_once() -> None:
    # before: ~(n-1)! cycles were listed; ten STAs took 30 s and a million lines, more hung
    async def main() -> None:
        async with comsim.Runtime(deterministic=True, seed=0) as rt:
            await mesh(rt, 12)

    start = time.monotonic()
    with pytest.raises(Deadlock) as info:
        comsim.testing.run(main)
    assert time.monotonic() - start < 10.0  # before: 30 s, and more apartments hung
    exc = info.value
    assert len(exc.cycles) == MAX_CYCLES
    assert all(c[0] == c[-1] and len(set(c[:-1])) == len(c) - 1 for c in exc.cycles)
    text = str(exc).splitlines()
    assert len(text) < len(exc.waits) + MAX_CYCLES + 10
    assert text[-1] == f"(the search for wait-for cycles stopped after {MAX_CYCLES})"
    assert sum("a COM wait on call" in w.waits_on for w in exc.waits) == 12 * 11 * 2
    again = pickle.loads(pickle.dumps(exc))  # crosses processes whole
    assert (again.waits, again.cycles, str(again)) == (exc.waits, exc.cycles, str(exc))


class IHang(comsim.Interface):
    async def Hang(self) -> None: ...


class Hanger(comsim.CoClass, IHang):
    async def Hang(self) -> None:
        await anyio.Event().wait()


async def calls_a_hanger(rt: comsim.Runtime, client: str, server: str) -> None:
    cli_apt, srv = await rt.create_sta(client), await rt.create_sta(server)

    async def make() -> comsim.MarshalStream:
        return comsim.marshal_interface(Hanger(), IHang)

    stream = await srv.run(make)

    async def call() -> None:
        await comsim.unmarshal_interface(stream, IHang).Hang()

    await cli_apt.run(call)


def test_two_runtimes_naming_apartments_alike_make_no_false_cycle() -> None:
    # runtime 1: A waits on B; runtime 2: its own B waits on its own A. No cycle: before, the
    # names were the graph's nodes, and "B -> A -> B" was reported
    async def main() -> None:
        async with comsim.Runtime(deterministic=True, seed=0) as one, \
                comsim.Runtime(deterministic=True, seed=0) as two:
            async with anyio.create_task_group() as tg:
                tg.start_soon(calls_a_hanger, one, "A", "B")
                tg.start_soon(calls_a_hanger, two, "B", "A")

    with pytest.raises(Deadlock) as info:
        comsim.testing.run(main)
    assert info.value.cycles == []
    assert "wait-for cycle" not in str(info.value)
    names = {w.apartment for w in info.value.waits}
    assert {"A (runtime 1)", "B (runtime 1)", "A (runtime 2)", "B (runtime 2)"} <= names


async def hangs(rt: comsim.Runtime) -> None:
    await rt.create_sta("a")
    await anyio.Event().wait()


def test_one_deadlock_is_one_outcome() -> None:
    found = explore(hangs, range(4), keep_going=True)
    assert len(found) == 1 and found.runs == 4
    (outcome,) = found
    assert isinstance(outcome, Raised) and outcome.type == "Deadlock"


# ------------------------------------------------------------------ traces
class ICalc(comsim.Interface):
    async def Add(self, x: int, y: int) -> int: ...


class Calc(comsim.CoClass, ICalc):
    async def Add(self, x: int, y: int) -> int:
        return x + y


async def one_call(rt: comsim.Runtime) -> int:
    a, b = await rt.create_sta("a"), await rt.create_sta("b")

    async def serve() -> comsim.MarshalStream:
        return comsim.marshal_interface(Calc(), ICalc)

    stream = await b.run(serve)

    async def call() -> int:
        return await comsim.unmarshal_interface(stream, ICalc).Add(1, 2)

    return await a.run(call)


def test_nested_captures_across_explore_runs() -> None:
    with capture_trace() as outer:
        with capture_trace() as inner:
            explore(one_call, range(2))
        explore(one_call, range(1))
    assert len(inner) == 2 * len(outer) // 3 and len(outer) > 0
    runs = [i for i, e in enumerate(outer) if e["event"] == "call.sent"]
    assert len(runs) == 3 and all(outer[i]["call_id"] == 1 for i in runs)  # ids per run
    with pytest.raises(ZeroDivisionError), capture_trace() as gone:
        1 / 0  # noqa: B018
    explore(one_call, range(1))
    assert gone == []  # the capture ended with its block


@contextlib.contextmanager
def structlog_configured(*processors: Any) -> Iterator[None]:
    was, old = structlog.is_configured(), structlog.get_config()
    structlog.configure(processors=list(processors))
    try:
        yield
    finally:
        structlog.reset_defaults()
        if was:
            structlog.configure(**old)


def test_the_applications_structlog_processors_do_not_touch_the_capture() -> None:
    seen: list[str] = []

    def meddle(logger: Any, method: str, event: dict[str, Any]) -> Any:
        seen.append(event["event"])
        event.clear()
        raise structlog.DropEvent

    with capture_trace() as alone:
        explore(one_call, range(1))
    with structlog_configured(meddle), capture_trace() as events:
        assert dict(explore(one_call, range(1))) == {3: 0}
    assert seen == events.names() and "call.completed" in seen
    assert events == alone  # not cleared, not dropped


def test_a_broken_structlog_processor_does_not_break_the_runtime() -> None:
    def broken(logger: Any, method: str, event: dict[str, Any]) -> Any:
        raise ValueError("the application's logging is broken")

    with collected(), structlog_configured(broken):
        assert dict(explore(one_call, range(1))) == {3: 0}


def test_a_trace_whose_call_events_lack_an_apartment_still_draws() -> None:
    with capture_trace() as events:
        explore(one_call, range(1))
    edited = Trace({k: v for k, v in e.items() if k != "client"} for e in events)
    assert "(outside)" in edited.to_text()
    assert "as (outside)" in edited.to_mermaid()
    json.dumps(edited.to_chrome_trace())


# ------------------------------------------------------------------ the pytest plugin
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
A_TEST = "async def test_x(comsim_runtime):\n    await comsim_runtime.create_sta('a')\n"


@pytest.mark.parametrize(("args", "ini", "says"), [
    (["--comsim-seeds", "abc"], "", "--comsim-seeds: invalid int value"),
    (["--comsim-seeds", "0"], "", "--comsim-seeds 0: give N >= 1"),  # before: all skipped
    (["--comsim-seeds", "-3"], "", "--comsim-seeds -3: give N >= 1"),
    ([], "comsim_seeds = abc\n", "comsim_seeds = abc: give an int N >= 1"),  # a traceback
    ([], "comsim_seeds = 0\n", "comsim_seeds = 0: give an int N >= 1"),
    (["--comsim-shrink-runs", "-1"], "", "--comsim-shrink-runs -1: give N >= 0"),
    (["--comsim-trace-dir", "a_file"], "", "--comsim-trace-dir a_file: not a directory"),
    (["--comsim-replay", "garbled.json"], "", "--comsim-replay garbled.json: no comsim "
                                              "schedule can be read"),
    (["--comsim-replay", "."], "", "--comsim-replay .: no comsim schedule"),
])
def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                            ini: str, says: str) -> None:
    pytester.makeini(INI + ini)
    pytester.makepyfile(test_x=A_TEST)
    pytester.path.joinpath("a_file").write_text("x")
    pytester.path.joinpath("garbled.json").write_text('{"format": "comsim-schedule", "ver')
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert says in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


MARKERS = {
    "seeds=5": ("@pytest.mark.comsim(seeds=5)", "seeds must be a non-empty iterable of ints"),
    "positional": ("@pytest.mark.comsim(range(3))", "takes only the keyword seeds="),
    "typo": ("@pytest.mark.comsim(seed=3)", "comsim(seed=3): the marker takes only"),
    "empty": ("@pytest.mark.comsim(seeds=[])", "seeds must be a non-empty iterable"),
    "floats": ("@pytest.mark.comsim(seeds=[1.7])", "comsim(seeds=[1.7]): seeds must be"),
    "strings": ("@pytest.mark.comsim(seeds='abc')", "comsim(seeds='abc'): seeds must be"),
    "bools": ("@pytest.mark.comsim(seeds=[True])", "comsim(seeds=[True]): seeds must be"),
}


def test_the_marker_misused_fails_collection_naming_the_fix(pytester: pytest.Pytester) -> None:
    # before: a traceback from inside the plugin (seeds=5, 'abc'), or silently one seed, none
    # at all or a truncated seed (range(3) positional, seed=3, [], [1.7], [True])
    pytester.makeini(INI)
    for n, (mark, _) in enumerate(MARKERS.values()):
        pytester.makepyfile(**{f"test_m{n}": f"import pytest\n\n{mark}\n"
                                             f"async def test_m(comsim_runtime):\n    pass\n"})
    pytester.makepyfile(test_fine="import pytest\n\n@pytest.mark.comsim(seeds=[-1, 2**70])\n"
                                  "async def test_m(comsim_runtime):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert out.count("ERROR collecting") == len(MARKERS), out
    for n, (_, says) in enumerate(MARKERS.values()):
        assert f"test_m{n}.py::test_m: " in out and says in out, (n, out)
    assert "e.g. @pytest.mark.comsim(seeds=range(20))" in out
    assert "_plugin.py" not in out and "During handling" not in out  # no traceback
    assert "test_fine.py::test_m[seed-1]" in out and "[seed1180591620717411303424]" in out


def test_failing_reports_survive_what_cannot_be_written(pytester: pytest.Pytester) -> None:
    # a trace directory that cannot be made (a file on its path) and a test whose body exits
    # (SystemExit) while its schedule is shrunk: before, an INTERNALERROR each
    pytester.makeini(INI)
    pytester.path.joinpath("a_file").write_text("x")
    pytester.makepyfile(test_x='''
import sys, anyio, pytest

@pytest.mark.comsim(seeds=range(8))
async def test_exits(comsim_runtime):
    a, b = [await comsim_runtime.create_sta(n) for n in "ab"]
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run, anyio.sleep, 0)
        tg.start_soon(b.run, anyio.sleep, 0)
    sys.exit(3)
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--comsim-trace-dir", "a_file/sub")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert "INTERNALERROR" not in out + result.stderr.str()
    result.assert_outcomes(failed=8)
    assert out.count("trace not written: ") == 8
    # SystemExit is an outcome of its runs like any exception: the schedule shrinks
    assert re.search(r"schedule saved \(0 preemptions, shrunk from [1-9]\d* preemptions\)",
                     out), out


# ------------------------------------------------------------------ the command line
SCENARIOS = '''
import asyncio, sys, anyio

async def ok(rt):
    await rt.create_sta("a")
    return 1

async def exits(rt):
    sys.exit(3)

async def cancelled(rt):
    raise asyncio.CancelledError()

async def hangs(rt):
    await rt.create_sta("a")
    await anyio.Event().wait()

def not_async(rt):
    return 1
'''

_MODULES = itertools.count()


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A scenario file in the current directory; its name (unique: the CLI keeps what it
    imported in sys.modules)."""
    name = f"adversarial_cli_{next(_MODULES)}_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(SCENARIOS)
    (tmp_path / "exits_on_import.py").write_text("import sys\nasync def ok(rt): pass\n"
                                                 "sys.exit(0)\n")
    (tmp_path / "argparse_on_import.py").write_text(
        "import argparse\nargparse.ArgumentParser().parse_args(['--bogus'])\n")
    (tmp_path / "broken.py").write_text("def oops(:\n")
    monkeypatch.chdir(tmp_path)
    yield name
    mine = str(tmp_path)
    for mod in [m for m, v in sys.modules.items()
                if str(getattr(v, "__file__", None) or "").startswith(mine)]:
        del sys.modules[mod]


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        rc = cli(list(args))
    except SystemExit as e:  # argparse's own errors
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(("fn", "says"), [("exits", "SystemExit: 3"),
                                          ("cancelled", "CancelledError")])
def test_trace_of_a_scenario_raising_a_base_exception_exits_1(
        here: str, capsys: pytest.CaptureFixture[str], fn: str, says: str) -> None:
    # before: exit status 3 with nothing said (the scenario's sys.exit), or a traceback
    rc, out, err = _main(capsys, "trace", f"{here}.py:{fn}")
    assert (rc, out) == (1, "")
    assert f"raised {says}" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["trace", "explore"])
@pytest.mark.parametrize(("target", "says"), [
    ("exits_on_import.py:ok", "importing exits_on_import.py exited (SystemExit: 0)"),
    ("argparse_on_import.py:ok", "importing argparse_on_import.py exited (SystemExit: 2)"),
    ("broken.py:oops", "SyntaxError"),
    ("no_such_module_here:scenario", "no module named 'no_such_module_here'"),
    ("{mod}.py:not_async", "is not an async function"),
    ("{mod}.py:missing", "has no 'missing'"),
])
def test_a_target_that_cannot_be_loaded_exits_2(here: str, capsys: pytest.CaptureFixture[str],
                                                command: str, target: str, says: str) -> None:
    # before: a module calling sys.exit(0) as it is imported made comsim exit 0, silently
    rc, out, err = _main(capsys, command, target.format(mod=here))
    assert (rc, out) == (2, "") and says in err and "Traceback" not in err
    if "exited" in says:
        assert 'if __name__ == "__main__":' in err


def test_trace_of_a_deadlock_names_it_not_comsims_insides(
        here: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _main(capsys, "trace", f"{here}.py:hangs")
    assert (rc, out) == (1, "") and "raised Deadlock: deadlock at virtual time 0.0" in err
    assert "a non-COM await on Event.wait()" in err
    assert "_runtime" not in err  # before: "at .../comsim/_runtime/loop.py:121 in _idle"


@pytest.mark.parametrize(("args", "says"), [
    (["--runs", "0"], "must be >= 1"), (["--runs", "-1"], "must be >= 1"),
    (["--depth", "0"], "must be >= 1"), (["--workers", "0"], "must be >= 1"),
    (["--strategy", "bogus"], "invalid choice: 'bogus'"),
    (["--runs", "abc"], "invalid int value: 'abc'"),
])
def test_explore_bad_options_exit_2(here: str, capsys: pytest.CaptureFixture[str],
                                    args: list[str], says: str) -> None:
    rc, out, err = _main(capsys, "explore", f"{here}.py:ok", *args)
    assert rc == 2 and says in err and out == ""


def test_explore_negative_seeds_are_seeds(here: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _main(capsys, "explore", f"{here}.py:ok", "--runs", "3", "--first-seed", "-5",
                       "--json", "-")
    report = json.loads(out)
    assert rc == 0 and report["outcomes"] == [{"outcome": "1", "first_seed": -5, "count": 3}]


def test_explore_json_to_a_path_that_cannot_be_written_exits_2(
        here: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = _main(capsys, "explore", f"{here}.py:ok", "--runs", "2",
                       "--json", str(tmp_path / "no" / "such" / "dir.json"))
    assert rc == 2 and "cannot write" in err and "Traceback" not in err


def test_explore_of_a_deadlocking_scenario_reports_the_deadlock(
        here: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, err = _main(capsys, "explore", f"{here}.py:hangs", "--runs", "2", "--json", "-",
                         "--save-dir", str(tmp_path / "saved"))
    assert rc == 1 and "failed:" not in err, err
    rows = json.loads(out)["outcomes"]
    assert [r["outcome"].split(":")[0] for r in rows] == ["raised Deadlock"]


def test_exit_statuses_as_a_process(here: str) -> None:
    # the documented statuses of the real command: 0, 1 (a scenario raised), 2 (bad input)
    def status(*args: str) -> int:
        return subprocess.run([sys.executable, "-m", "comsim", *args], capture_output=True,
                              timeout=60).returncode

    assert status("trace", f"{here}.py:exits") == 1  # before: 3, the scenario's sys.exit
    assert status("explore", "exits_on_import.py:ok", "--runs", "1") == 2  # before: 0


class _Unprintable(Exception):
    """An exception whose ``__str__`` and ``__repr__`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("str boom")

    def __repr__(self) -> str:
        raise RuntimeError("repr boom")


async def _raises_unprintable(rt: comsim.Runtime) -> None:
    raise _Unprintable()


def test_a_scenario_raising_an_unprintable_exception() -> None:
    # explore re-raises the exception itself, with its notes, and replay gives it as an
    # outcome that shows what can be shown; before, both raised the RuntimeError of the
    # exception's __str__
    with pytest.raises(_Unprintable) as info:
        comsim.testing.explore(_raises_unprintable, range(2))
    assert any("saved to" in note for note in info.value.__notes__)
    outcome = comsim.testing.replay(_raises_unprintable, comsim.testing.Schedule([]))
    assert outcome == comsim.testing.Raised("_Unprintable",
                                            "<_Unprintable: str() raised RuntimeError>")


async def _raises_long(rt: comsim.Runtime) -> None:
    raise ValueError("x" * 1000 + "the end")


def test_a_raised_outcome_keeps_its_whole_message() -> None:
    # Raised("Deadlock", ...) reports run long; each is one outcome with all of its text
    outcome = comsim.testing.replay(_raises_long, comsim.testing.Schedule([]))
    assert outcome == comsim.testing.Raised("ValueError", "x" * 1000 + "the end")
