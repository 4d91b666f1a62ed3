"""The deterministic runtime: virtual time, seeded replay, seed exploration, fault injection and
the pytest plugin (API.md "The deterministic runtime"; comsim.testing).

Most tests here are plain sync tests that call ``comsim.testing.run(main)`` themselves, so that
they can run the same program twice (or under many seeds) and compare. The ones that need only
one run are ``deterministic_only`` async tests on the ``rt`` fixture.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr
from comsim.testing import VirtualTimeLoop, capture_trace, explore, run

from ..helpers import load_example, new_call, pair

pytest_plugins = ["pytester"]

INFINITE = comsim.INFINITE
STAGES = {"queued", "running", "finished"}


# --------------------------------------------------------------------------- interfaces
class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Mul(self, a: int, b: int) -> int: ...
    async def Slow(self, seconds: float) -> str: ...
    async def Hold(self, started: Any, release: Any) -> str: ...


AsyncICalc = comsim.async_interface(ICalc)


class Calc(comsim.CoClass, ICalc):
    """Writes down what ran; ``log`` passes by reference through ``Apartment.run``."""

    def __init__(self, log: list[Any] | None = None) -> None:
        super().__init__()
        self.log = log if log is not None else []

    async def Add(self, a: int, b: int) -> int:
        self.log.append(("Add", a, b))
        return a + b

    async def Mul(self, a: int, b: int) -> int:
        self.log.append(("Mul", a, b))
        return a * b

    async def Slow(self, seconds: float) -> str:
        self.log.append(("Slow", seconds))
        await anyio.sleep(seconds)  # virtual time on the deterministic runtime
        return f"slept {seconds}"

    async def Hold(self, started: Any, release: Any) -> str:
        self.log.append("Hold:start")
        started.Signal()
        try:
            await release.Wait(0, INFINITE)
        except anyio.get_cancelled_exc_class():
            self.log.append("Hold:interrupted")
            raise
        self.log.append("Hold:done")
        return "held"


class StubbornCalc(Calc):
    """Ignores cancels: only CoTestCancel would tell it (R30), and it never asks."""

    cancel_policy = "cooperative"


async def _serve(apt: comsim.Apartment, n: int = 1, cls: type[Calc] = Calc,
                 log: list[Any] | None = None) -> list[comsim.MarshalStream]:
    """Construct one object in ``apt`` and give ``n`` normal marshals of it (R6: one each)."""

    async def make() -> list[comsim.MarshalStream]:
        obj = cls(log)
        return [comsim.marshal_interface(obj, ICalc) for _ in range(n)]

    return await apt.run(make)


async def _outcome(aw: Any) -> Any:
    """What an awaited COM call gave: ("ok", value) or ("hr", hresult)."""
    try:
        return ("ok", await aw)
    except comsim.COMError as exc:
        return ("hr", exc.hresult)


# ============================================================================ VirtualTimeLoop
def test_virtual_time_starts_at_zero_and_sleeps_cost_nothing() -> None:  # API: virtual time
    async def main() -> tuple[float, float, bool]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await anyio.sleep(3600)
        return start, loop.time(), isinstance(loop, VirtualTimeLoop)

    real0 = time.perf_counter()
    start, end, virtual = run(main)
    real = time.perf_counter() - real0
    assert virtual
    assert start == 0.0
    assert end == pytest.approx(3600.0, abs=1e-9)
    assert real < 1.0, f"an hour of virtual sleep took {real:.3f} s of real time"


def test_virtual_time_moves_only_when_nothing_is_ready() -> None:  # API: virtual time
    """One task busy-yields with asyncio.sleep(0); another sleeps 1 s. While the first still has
    work ready, the clock stands still; the sleeper wakes only after the busy task is done, at
    exactly 1.0."""
    n = 300

    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, float]] = []

        async def sleeper() -> None:
            await anyio.sleep(1)
            seen.append(("sleeper", loop.time()))

        async def busy() -> None:
            for _ in range(n):
                seen.append(("busy", loop.time()))
                await asyncio.sleep(0)
            seen.append(("busy-done", loop.time()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            tg.start_soon(busy)
        return seen

    seen = run(main)
    busy_times = [t for who, t in seen if who.startswith("busy")]
    assert len(busy_times) == n + 1
    assert set(busy_times) == {0.0}, "the clock moved while a task was still ready to run"
    assert seen[-1] == ("sleeper", pytest.approx(1.0, abs=1e-9))


def test_deterministic_runtime_refuses_a_plain_asyncio_loop() -> None:  # API: deterministic
    async def main() -> None:
        async with comsim.Runtime(deterministic=True, seed=1):
            pass  # pragma: no cover - must not get here

    with pytest.raises(RuntimeError):
        asyncio.run(main())
    with pytest.raises(RuntimeError):
        anyio.run(main, backend="asyncio")


# ============================================================================ seeded replay
def _traced_run(seed: int | None) -> tuple[list[dict[str, Any]], Any]:
    """Three STAs and the MTA; two clients at once; sync and async calls, cancels in flight,
    seeded latency on every channel. Gives the full trace and what the clients saw."""

    async def main() -> tuple[list[dict[str, Any]], Any]:
        async with comsim.Runtime(deterministic=True, seed=seed) as rt:
            rt.set_latency(lambda rng: rng.uniform(0.0, 0.004))
            a = await rt.create_sta("a")
            b = await rt.create_sta("b")
            c = await rt.create_sta("c")
            sb = await _serve(b, 2)
            sc = await _serve(c, 2)
            sm = await _serve(rt.mta, 2)

            async def client(streams: list[comsim.MarshalStream], delay: float) -> list[Any]:
                proxies = [comsim.unmarshal_interface(s) for s in streams]
                seen: list[Any] = []
                for i, p in enumerate(proxies):
                    seen.append(await _outcome(p.Add(i, 10)))  # synchronous (R13)
                calls = [new_call(p, AsyncICalc) for p in proxies + proxies[:1]]
                for i, call in enumerate(calls):
                    assert call.Begin_Slow(0.001 * (i + 1)) == hr.S_OK
                await anyio.sleep(delay)
                for call in calls[::2]:  # cancel every other one, wherever it is (R28, R29)
                    cancel = call.QueryInterface(comsim.ICancelMethodCalls)
                    seen.append(await cancel.Cancel(0))
                    cancel.Release()
                for call in calls:
                    seen.append(await _outcome(call.Finish_Slow()))
                    call.Release()
                return seen

            with capture_trace() as events:
                results: dict[str, Any] = {}

                async def drive(name: str, apt: comsim.Apartment, streams: Any,
                                delay: float) -> None:
                    results[name] = await apt.run(client, streams, delay)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(drive, "a", a, [sb[0], sc[0], sm[0]], 0.002)
                    tg.start_soon(drive, "mta", rt.mta, [sb[1], sc[1]], 0.0015)
                await anyio.sleep(0.1)  # let every message in flight land
            return list(events), results

    return run(main)


def test_same_seed_same_trace_event_for_event() -> None:  # API: deterministic; R29
    first, seen1 = _traced_run(5)
    second, seen2 = _traced_run(5)
    names = {e["event"] for e in first}
    # the scenario really did exercise what it claims to
    assert {"call.sent", "call.dispatched", "call.completed", "call.cancel_requested",
            "call.cancelled"} <= names
    assert len({e["client"] for e in first}) == 2 and len({e["server"] for e in first}) == 3
    assert all("t" in e for e in first)
    assert len({e["t"] for e in first}) > 5, "seeded latency should spread events in time"
    assert seen1 == seen2
    assert len(first) == len(second)
    for i, (x, y) in enumerate(zip(first, second, strict=True)):
        assert x == y, f"event {i} differs under the same seed"


def test_a_deterministic_runtime_without_a_seed_runs_seed_0() -> None:  # API: deterministic
    # same program, same run: before, no seed drew one from the OS, and every seeded draw
    # (latency here) differed from run to run
    first, seen1 = _traced_run(None)
    second, seen2 = _traced_run(None)
    assert (first, seen1) == (second, seen2)
    assert (first, seen1) == _traced_run(0)

    async def seed_of() -> tuple[int | None, int | None]:
        async with comsim.Runtime(deterministic=True) as rt:
            await rt.create_sta("a")
            schedule = rt.schedule
            assert schedule is not None
            return rt.seed, schedule.seed

    assert run(seed_of) == (0, 0)


def _order(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The interleaving alone: which step of which call came when, times left out."""
    return [(e["event"], e["call_id"], e.get("stage")) for e in events]


def test_different_seeds_reach_different_interleavings() -> None:  # API: deterministic
    base, _ = _traced_run(0)
    for seed in range(1, 20):
        other, _ = _traced_run(seed)
        if _order(other) != _order(base):
            assert other != base
            return
    raise AssertionError("seeds 0..19 all produced the same order of events")


# ============================================================================ explore (R29)
def test_explore_finds_the_three_cancel_stages() -> None:  # R29
    example = load_example("explore_cancel_race", prefix="_comsim_example_", register=False)
    log: list[tuple[int | None, Any]] = []

    async def recording(rt: comsim.Runtime) -> Any:
        outcome = await example.scenario(rt)
        log.append((rt.seed, outcome))
        return outcome

    found = explore(recording, range(200), until=lambda f: STAGES <= set(f))
    assert STAGES <= set(found), f"not every stage found in 200 seeds: {found!r}"
    # until= stopped at the first seed that completed the set
    assert found.runs == len(log) == max(found[s] for s in STAGES) + 1
    for outcome, seed in found.items():
        seeds = [s for s, o in log if o == outcome]
        assert seed == seeds[0], "an outcome must map to the first seed that reached it"
        assert found.counts[outcome] == len(seeds)
    assert sum(found.counts.values()) == found.runs

    # each stage replays from its seed, twice
    for stage in sorted(STAGES):
        seed = found[stage]

        async def replay(seed: int = seed) -> Any:
            async with comsim.Runtime(deterministic=True, seed=seed) as rt:
                return await example.scenario(rt)

        assert run(replay) == stage
        assert run(replay) == stage
        assert dict(explore(example.scenario, [seed])) == {stage: seed}


# ============================================================================ fault injection
async def _pair(rt: comsim.Runtime, cls: type[Calc] = Calc) -> tuple[
        comsim.Apartment, comsim.Apartment, comsim.MarshalStream, list[Any]]:
    log: list[Any] = []
    p = await pair(rt, lambda: cls(log), ICalc, server="b", client="a", client_first=True,
                   proxy=False)
    return p.client, p.server, p.stream, log


@pytest.mark.asyncio
@pytest.mark.deterministic_only
async def test_latency_round_trip_is_twice_the_latency(rt: comsim.Runtime) -> None:  # R13
    a, _b, stream, log = await _pair(rt)
    rt.set_latency(0.25)

    async def use() -> tuple[Any, float]:
        p = comsim.unmarshal_interface(stream)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        value = await p.Add(2, 3)
        return value, loop.time() - t0

    value, took = await a.run(use)
    assert value == 5 and log == [("Add", 2, 3)]
    assert took == pytest.approx(0.5, abs=1e-9)


@pytest.mark.asyncio
@pytest.mark.deterministic_only
async def test_latency_per_channel(rt: comsim.Runtime) -> None:  # R13
    """Only the a->b channel is slow: the request takes 0.25, the reply nothing."""
    a, _b, stream, _log = await _pair(rt)
    rt.set_latency(0.25, source="a", target="b")

    async def use() -> tuple[Any, float]:
        p = comsim.unmarshal_interface(stream)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        value = await p.Mul(2, 3)
        return value, loop.time() - t0

    value, took = await a.run(use)
    assert value == 6
    assert took == pytest.approx(0.25, abs=1e-9)


@pytest.mark.asyncio
@pytest.mark.deterministic_only
async def test_scheduled_shutdown_kills_a_running_call(rt: comsim.Runtime) -> None:  # R18
    a, b, stream, log = await _pair(rt)
    started = comsim.ManualResetEvent()
    never = comsim.ManualResetEvent()
    loop = asyncio.get_running_loop()
    t_sched = loop.time()
    rt.schedule_shutdown(b, 2.0)

    async def use() -> tuple[int, float]:
        p = comsim.unmarshal_interface(stream)
        with pytest.raises(comsim.COMError) as exc:
            await p.Hold(started, never)
        return exc.value.hresult, asyncio.get_running_loop().time()

    code, t_failed = await a.run(use)
    assert code == hr.RPC_E_DISCONNECTED
    assert t_failed == pytest.approx(t_sched + 2.0, abs=1e-9)
    assert started.is_set()
    # the server task was cancelled by the shutdown, whatever it was waiting for (R18)
    assert log == ["Hold:start", "Hold:interrupted"]
    assert not b.alive
    with pytest.raises(comsim.COMError) as exc:
        await b.run(_serve, b)
    assert exc.value.hresult == hr.RPC_E_DISCONNECTED


@pytest.mark.asyncio
@pytest.mark.deterministic_only
async def test_injected_hresult_fails_the_call_with_it(rt: comsim.Runtime) -> None:  # R14
    a, _b, stream, log = await _pair(rt)
    c = await rt.create_sta("c")
    other_log: list[Any] = []
    (other,) = await _serve(c, 1, Calc, other_log)
    rt.inject_fault("Add", hr.E_FAIL, apartment="b")

    async def use() -> list[Any]:
        p = comsim.unmarshal_interface(stream)
        q = comsim.unmarshal_interface(other)
        return [await _outcome(p.Add(1, 2)), await _outcome(p.Mul(2, 2)),
                await _outcome(q.Add(1, 2))]

    assert await a.run(use) == [("hr", hr.E_FAIL), ("ok", 4), ("ok", 3)]
    assert log == [("Mul", 2, 2)], "the fault strikes before the method runs"
    assert other_log == [("Add", 1, 2)], "a fault for apartment b leaves c alone"


@pytest.mark.asyncio
@pytest.mark.deterministic_only
async def test_injected_exception_gives_serverfault(rt: comsim.Runtime) -> None:  # R14
    a, _b, stream, log = await _pair(rt)
    rt.inject_fault("Mul", ValueError("boom"))

    async def use() -> comsim.COMError:
        p = comsim.unmarshal_interface(stream)
        with pytest.raises(comsim.COMError) as exc:
            await p.Mul(3, 3)
        return exc.value

    with capture_trace() as events:
        err = await a.run(use)
    assert err.hresult == hr.RPC_E_SERVERFAULT
    assert isinstance(err.__cause__, ValueError) and str(err.__cause__) == "boom"
    (returned,) = events.events("call.returned", method="Mul")
    assert returned["hresult"] == hr.RPC_E_SERVERFAULT
    assert "boom" in returned["exc"]
    assert log == []


def _fault_pattern(seed: int, n: int = 24) -> list[Any]:
    async def main() -> list[Any]:
        async with comsim.Runtime(deterministic=True, seed=seed) as rt:
            a, _b, stream, log = await _pair(rt)
            rt.inject_fault("Add", hr.E_FAIL, probability=0.5)

            async def use() -> list[Any]:
                p = comsim.unmarshal_interface(stream)
                return [await _outcome(p.Add(i, 1)) for i in range(n)]

            seen = await a.run(use)
            # a call that failed never reached the method; one that succeeded did
            assert [("Add", i, 1) for i, s in enumerate(seen) if s[0] == "ok"] == log
            return seen

    return run(main)


def test_probabilistic_faults_replay_under_the_seed() -> None:  # R14
    first = _fault_pattern(11)
    assert _fault_pattern(11) == first
    kinds = {s[0] for s in first}
    assert kinds == {"ok", "hr"}, f"probability 0.5 over 24 calls gave {first}"
    assert {s[1] for s in first if s[0] == "hr"} == {hr.E_FAIL}
    assert any(_fault_pattern(s) != first for s in range(12, 20))


@pytest.mark.asyncio
@pytest.mark.deterministic_only
async def test_long_grace_and_time_outs_take_no_real_time(rt: comsim.Runtime) -> None:  # R23 R28
    a, _b, stream, log = await _pair(rt, StubbornCalc)
    started = comsim.ManualResetEvent()
    release = comsim.ManualResetEvent()

    async def use() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        call = new_call(comsim.unmarshal_interface(stream), AsyncICalc)
        call.Begin_Hold(started, release)
        assert await started.Wait(0, INFINITE) == hr.S_OK
        sync = call.QueryInterface(comsim.ISynchronize)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        real0 = time.perf_counter()
        t0 = loop.time()
        waited = await sync.Wait(0, 5000)
        t1 = loop.time()
        cancelled = await cancel.Cancel(30)  # the server ignores it: the grace runs out
        t2 = loop.time()
        real = time.perf_counter() - real0
        finish = await _outcome(call.Finish_Hold())
        sync.Release()
        cancel.Release()
        call.Release()
        return {"waited": waited, "wait_took": t1 - t0, "cancelled": cancelled,
                "grace_took": t2 - t1, "real": real, "finish": finish}

    seen = await a.run(use)
    release.Signal()
    assert seen["waited"] == hr.RPC_S_CALLPENDING
    assert seen["wait_took"] == pytest.approx(5.0, abs=1e-9)
    assert seen["cancelled"] == hr.S_OK
    assert seen["grace_took"] == pytest.approx(30.0, abs=1e-9)
    assert seen["real"] < 1.0, f"35 virtual seconds took {seen['real']:.3f} s of real time"
    assert seen["finish"] == ("hr", hr.RPC_E_CALL_CANCELED)
    assert log[0] == "Hold:start" and "Hold:interrupted" not in log


# ============================================================================ pytest plugin
PLUGIN_TEST = '''
import asyncio

import pytest

import comsim
from comsim.testing import VirtualTimeLoop

SEEDS = []


class IEcho(comsim.Interface):
    async def Echo(self, x: int) -> int: ...


class Echo(comsim.CoClass, IEcho):
    async def Echo(self, x):
        return x


@pytest.mark.comsim(seeds=range(3))
async def test_on_the_deterministic_runtime(comsim_runtime, comsim_seed):
    rt = comsim_runtime
    assert isinstance(rt, comsim.Runtime)
    assert rt.deterministic and rt.seed == comsim_seed
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    t0 = loop.time()
    await asyncio.sleep(60)
    assert loop.time() - t0 == 60
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def make():
        return comsim.marshal_interface(Echo(), IEcho)

    stream = await b.run(make)

    async def use():
        return await comsim.unmarshal_interface(stream).Echo(comsim_seed)

    assert await a.run(use) == comsim_seed
    SEEDS.append(comsim_seed)


def test_ran_once_per_seed():
    assert SEEDS == [0, 1, 2]
'''


def test_plugin_runs_a_marked_test_once_per_seed(pytester: pytest.Pytester) -> None:  # API
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_plugin_seeds=PLUGIN_TEST)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*4 passed*"])



def test_wait_all_tasks_blocked_lets_every_message_land() -> None:  # R2 R13 (testing helper)
    class IEcho(comsim.Interface):
        async def Echo(self, x: int) -> int: ...

    class Echo(comsim.CoClass, IEcho):
        async def Echo(self, x: int) -> int:
            return x

    async def main() -> tuple[list[str], float]:
        async with comsim.Runtime(deterministic=True, seed=3) as rt:
            a, b = await rt.create_sta("a"), await rt.create_sta("b")

            async def serve() -> Any:
                return comsim.marshal_interface(Echo(), IEcho)

            stream = await b.run(serve)

            async def client() -> Any:
                factory = comsim.unmarshal_interface(stream).QueryInterface(comsim.ICallFactory)
                call = factory.CreateCall(comsim.async_interface(IEcho))
                call.Begin_Echo(7)
                return call

            with comsim.testing.capture_trace() as events:
                call = await a.run(client)
                t0 = asyncio.get_running_loop().time()
                await comsim.testing.wait_all_tasks_blocked()
                names = events.names()
                # the reply has been taken in: the call object's event is set (R23)
                sync = call.QueryInterface(comsim.ISynchronize)
                assert await sync.Wait(0, 0) == comsim.hresult.S_OK
            return names, asyncio.get_running_loop().time() - t0

    names, elapsed = comsim.testing.run(main)
    assert names == ["call.sent", "call.arrived", "call.dispatched", "call.returned"]
    assert elapsed == 0  # the clock did not move


def test_wait_all_tasks_blocked_refuses_a_plain_loop() -> None:
    async def main() -> None:
        await comsim.testing.wait_all_tasks_blocked()

    with pytest.raises(RuntimeError):
        asyncio.run(main())


@pytest.mark.parametrize("seed", range(4))
def test_a_shutdown_another_task_waits_for_has_ended_when_the_runtime_exits(seed: int) -> None:
    # R18: leaving the runtime leaves no task of comsim behind. A task waiting in
    # ``shutdown()`` is answered by a message, which a channel's latency delays; the runtime's
    # exit found the apartment closed already and returned before that message came
    waiters: list[asyncio.Task[Any]] = []

    async def main() -> None:
        async with comsim.Runtime(deterministic=True, seed=seed) as rt:
            rt.set_latency(0.002)  # every message: the shutdown's end comes 2 ms after it
            sta = await rt.create_sta("s")
            waiters.append(asyncio.ensure_future(sta.shutdown()))
            await asyncio.sleep(0.001)  # virtual: the teardown has ended, its answer is on its way
            assert not sta.alive and not waiters[0].done()
        assert waiters[0].done() and waiters[0].exception() is None

    run(main)
