"""Exploration runs: the virtual-time loop's fast paths (its own turns, handles, timers, futures
and tasks, and the loop kept from run to run) decide nothing. The same seeds give the same
outcomes and the same schedules as asyncio's own code paths (the loop in debug mode) and as a
fresh loop per run."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from typing import Any

import pytest

import comsim
import comsim.testing
from comsim.testing import _runs, explore
from comsim.testing._loop import VirtualTimeLoop
from comsim.testing._runs import Exploration
from tests.testing.scenarios import two_callers

from ..helpers import load_example

_race = load_example("explore_cancel_race", prefix="_comsim_reuse_", register=False)
_orders = load_example("explore_orders", prefix="_comsim_reuse_", register=False)

SCENARIOS = [_race.scenario, _orders.scenario, two_callers]


def _summary(found: Exploration) -> dict[Any, Any]:
    return {"first": dict(found), "counts": found.counts, "runs": found.runs,
            "interleavings": found.interleavings,
            "decisions": {k: (s.decisions, s.seed) for k, s in found.schedules.items()}}


@pytest.fixture
def reused_loop() -> Iterator[None]:
    """Put back the thread's kept loop after a test that replaced it."""
    old = getattr(_runs._REUSED, "loop", None)
    try:
        yield
    finally:
        mine = getattr(_runs._REUSED, "loop", None)
        if mine is not old and mine is not None and not mine.is_closed():
            mine.close()
        _runs._REUSED.loop = old


@pytest.mark.parametrize("scenario", SCENARIOS, ids=["cancel_race", "orders", "two_callers"])
def test_asyncio_own_paths_give_the_same_exploration(scenario: Any, reused_loop: None
                                                     ) -> None:
    fast = explore(scenario, range(120))
    loop = VirtualTimeLoop()
    loop.set_debug(True)  # asyncio's own turns, call_soon, call_at and handles
    loop.slow_callback_duration = 1e9  # (real time: no warnings)
    _runs._REUSED.loop = loop
    slow = explore(scenario, range(120))
    assert _runs._REUSED.loop is loop  # the debug loop was kept, run after run
    assert _summary(slow) == _summary(fast)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=["cancel_race", "orders", "two_callers"])
def test_a_fresh_loop_per_run_gives_the_same_runs(scenario: Any, reused_loop: None) -> None:
    for seed in range(40):
        kept = _runs.run_once(scenario, seed)
        _runs._REUSED.loop.close()
        _runs._REUSED.loop = None  # the next run makes a loop of its own
        fresh = _runs.run_once(scenario, seed)
        assert fresh[0] == kept[0] and fresh[1] == kept[1], seed


def test_turns_stop_where_asyncio_stops() -> None:
    """``run_forever`` returns after the turn in which ``stop`` was called; what that turn
    scheduled runs in the next ``run_forever``, timers at their virtual time."""
    loop = VirtualTimeLoop()
    seen: list[tuple[str, float]] = []

    def first() -> None:
        seen.append(("first", loop.time()))
        loop.call_soon(lambda: seen.append(("next turn", loop.time())))
        loop.call_later(2.0, lambda: seen.append(("timer", loop.time())))
        loop.stop()

    loop.call_soon(first)
    loop.run_forever()
    assert seen == [("first", 0.0)]
    loop.call_later(5.0, loop.stop)
    loop.run_forever()
    assert seen == [("first", 0.0), ("next turn", 0.0), ("timer", 2.0)]
    assert loop.time() == 5.0
    loop.close()


def test_debug_mode_switched_on_mid_run_takes_asyncio_turns() -> None:
    loop = VirtualTimeLoop()

    async def main() -> list[float]:
        times = []
        for i in range(4):
            if i == 2:
                loop.set_debug(True)
            await asyncio.sleep(1.0)
            times.append(loop.time())
        return times

    loop.slow_callback_duration = 1e9
    assert loop.run_until_complete(main()) == [1.0, 2.0, 3.0, 4.0]
    loop.close()


def test_handles_timers_futures_and_tasks_are_asyncio_s() -> None:
    loop = VirtualTimeLoop()
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var")
    ctx = contextvars.Context()
    ctx.run(var.set, 5)
    seen: list[Any] = []
    handle = loop.call_soon(lambda *a: seen.append((var.get(None), a)), 1, 2, context=ctx)
    assert isinstance(handle, asyncio.Handle) and not handle.cancelled()
    dropped = loop.call_soon(seen.append, "dropped")
    dropped.cancel()
    assert dropped.cancelled()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [(5, (1, 2))]
    timer = loop.call_later(3.0, print, "x")
    assert isinstance(timer, asyncio.TimerHandle) and timer.when() == 3.0
    assert loop.call_at(7.0, print).when() == 7.0
    timer.cancel()
    timer.cancel()  # once counted
    assert timer.cancelled() and loop._timer_cancelled_count == 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        loop.call_later(None, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loop.call_at(None, print)  # type: ignore[arg-type]
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future) and fut.get_loop() is loop

    async def named() -> int:
        return 1

    task = loop.create_task(named(), name="n1")
    assert task.get_name() == "n1" and loop.run_until_complete(task) == 1
    loop.close()
    with pytest.raises(RuntimeError):
        loop.call_later(1.0, print)
    with pytest.raises(RuntimeError):
        loop.call_soon(print)


def test_run_until_complete_of_a_coroutine_is_asyncio_s() -> None:
    loop = VirtualTimeLoop()

    async def value() -> int:
        await asyncio.sleep(1.0)
        return 7

    async def fails() -> None:
        raise KeyError("k")

    async def nested() -> None:
        inner = value()
        try:
            loop.run_until_complete(inner)
        finally:
            inner.close()

    async def stops() -> None:
        loop.stop()
        await asyncio.sleep(1.0)

    assert loop.run_until_complete(value()) == 7
    with pytest.raises(KeyError):
        loop.run_until_complete(fails())
    with pytest.raises(RuntimeError, match="already running"):
        loop.run_until_complete(nested())
    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        loop.run_until_complete(stops())
    fut = loop.create_future()
    loop.call_later(2.0, fut.set_result, "f")
    assert loop.run_until_complete(fut) == "f"  # a future: asyncio's own path
    assert loop.rewind()
    loop.close()
    late = value()
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_until_complete(late)
    late.close()


@pytest.mark.parametrize("make", ["comsim", "asyncio"])
def test_run_s_shield_is_asyncio_s(make: str) -> None:
    from comsim._runtime.jobs import shield as comsim_shield

    shield = comsim_shield if make == "comsim" else asyncio.shield
    loop = VirtualTimeLoop()

    async def main() -> list[Any]:
        seen: list[Any] = []
        inner = loop.create_future()
        outer = shield(inner)
        outer.cancel()  # the waiter's cancel does not reach the inner future
        await asyncio.sleep(0)
        seen += [outer.cancelled(), inner.cancelled()]
        inner.set_result(1)
        for result in ("value", KeyError("k"), None):
            inner = loop.create_future()
            outer = shield(inner)
            if result is None:
                inner.cancel()
            elif isinstance(result, BaseException):
                inner.set_exception(result)
            else:
                inner.set_result(result)
            try:
                seen.append(await outer)
            except KeyError as exc:
                seen.append(repr(exc))
            except asyncio.CancelledError:
                seen.append("cancelled")
        done = loop.create_future()
        done.set_result(2)
        seen.append(shield(done) is done)
        return seen

    assert loop.run_until_complete(main()) == [True, False, "value", "KeyError('k')",
                                                "cancelled", True]
    loop.close()


def test_a_run_lets_go_of_its_runtime_when_it_ends() -> None:
    # the loop kept for the next run keeps nothing of the last one alive: the run's runtime,
    # apartments and tasks (which refer to each other) are collected as the run ends, while
    # young, and not in the middle of a later run
    import gc
    import weakref

    kept: list[weakref.ref[Any]] = []

    async def scenario(rt: Any) -> Any:
        kept.append(weakref.ref(rt))
        return await _race.scenario(rt)

    gc.collect()
    for seed in range(5):
        explore(scenario, [seed])
        assert kept[-1]() is None
    gc.disable()  # a caller who turned the collector off keeps it off: nothing is collected
    try:
        explore(scenario, [5])
        assert kept[-1]() is not None
    finally:
        gc.enable()


def test_run_ends_a_task_that_swallows_its_cancels() -> None:
    # R18: a task an apartment's teardown left behind (it swallows every cancel) no longer
    # hangs the program's end: it is closed where it waits, with a warning. Before, run never
    # returned (virtual time jumped on, a second at a time)
    kept: list[asyncio.Task[None]] = []
    swallowed: list[float] = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                swallowed.append(asyncio.get_running_loop().time())

    async def unit() -> None:
        kept.append(asyncio.get_running_loop().create_task(stubborn()))

    async def main() -> str:
        async with comsim.Runtime(deterministic=True) as rt:
            sta = await rt.create_sta("A")
            await sta.run(unit)
            await sta.shutdown()
        return "ended"

    with pytest.warns(RuntimeWarning, match="ignores its cancellation"):
        assert comsim.testing.run(main) == "ended"
    assert kept[0].done()
    assert len(swallowed) >= 5  # the teardown's four cancels, and run's
