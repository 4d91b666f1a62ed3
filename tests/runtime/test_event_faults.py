"""Stand-alone events under races (R23, R2, R32): a ``StdEvent``'s signal is never lost nor
doubled when the waiter it woke does not return ``S_OK`` (its task was cancelled after the
wake-up), when a waiter gives up before the wake-up reaches it, or when a time-out and a
``Signal`` come at the same virtual instant.

Interleavings are forced with events: a unit that waits in an STA and is then covered by a
nested unit (R2) is woken, yet resumes only once the nested unit has ended, which leaves as long
a window as the test needs. ``settle`` makes sure a signal posted earlier has been taken in: on
the threaded runtime a later ``Apartment.run`` unit is taken in after it (one inbox, in order);
on the deterministic runtime ``wait_all_tasks_blocked`` lets every pending message land.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr
from comsim.testing import VirtualTimeLoop, wait_all_tasks_blocked

INFINITE = comsim.INFINITE


async def settle(sta: comsim.Apartment, fn: Any) -> Any:
    """Run ``fn`` as a unit of ``sta`` once every message posted to ``sta`` so far is taken in."""
    if isinstance(asyncio.get_running_loop(), VirtualTimeLoop):
        await wait_all_tasks_blocked()
    return await sta.run(fn)


async def _covered_waiter(rt: comsim.Runtime, ev: Any
                          ) -> tuple[comsim.Apartment, Any, Any, list[Any], Any]:
    """In a new STA: a unit W waiting on ``ev`` (INFINITE), covered by a nested unit N that
    waits on a gate (R2: W resumes only once N has ended). Gives the STA, W's and N's
    ``run`` tasks, W's outcomes (the HRESULT it got, or "cancelled") and the gate."""
    sta = await rt.create_sta("a")
    w_in, n_in, gate = (comsim.ManualResetEvent() for _ in range(3))
    box: dict[str, Any] = {}
    got: list[Any] = []

    async def waiter() -> None:
        box["task"] = asyncio.current_task()
        w_in.Signal()
        try:
            got.append(await ev.Wait(0, INFINITE))
        except asyncio.CancelledError:
            got.append("cancelled")  # the unit ends normally: its caller was not cancelled

    async def nested() -> int:
        n_in.Signal()
        return await gate.Wait(0, INFINITE)

    t_w = asyncio.ensure_future(sta.run(waiter))
    with anyio.fail_after(5):
        await w_in.Wait(0, INFINITE)
    t_n = asyncio.ensure_future(sta.run(nested))  # starts only once W is in its COM wait (R2)
    with anyio.fail_after(5):
        await n_in.Wait(0, INFINITE)
    box["gate"] = gate
    return sta, t_w, t_n, got, box


async def _then_uncover(sta: comsim.Apartment, step: Any, box: Any, t_n: Any, t_w: Any
                        ) -> None:
    """Run ``step`` nested above N once the wake-up is taken in (``settle``), then let N end:
    W resumes on top (R2) and its unit ends."""
    await settle(sta, step)
    box["gate"].Signal()
    with anyio.fail_after(5):
        await t_n
        await t_w


def _canceller(box: Any) -> Any:
    """A unit that cancels W's task (``box["task"]``)."""

    async def cancel_w() -> None:
        box["task"].cancel()

    return cancel_w


async def _nothing() -> None:
    pass


@pytest.mark.parametrize("then", ["later_wait", "second_waiter"])
@pytest.mark.asyncio
async def test_a_woken_waiter_cancelled_before_it_returns_gives_the_signal_back(
        rt: comsim.Runtime, then: str) -> None:  # R23, R2, R32
    ev = comsim.StdEvent()
    sta, t_w, t_n, got, box = await _covered_waiter(rt, ev)
    second = asyncio.ensure_future(ev.Wait(0, INFINITE)) if then == "second_waiter" else None
    ev.Signal()  # wakes W (the first waiter) and is consumed by it: W is below N (R2)

    # cancel W nested above N, once the wake-up is taken in; then N ends, W resumes on top and
    # raises (R32: the wait just ends)
    await _then_uncover(sta, _canceller(box), box, t_n, t_w)
    assert got == ["cancelled"]
    # the signal W consumed but never returned goes back to the event (R23)
    with anyio.fail_after(5):
        if second is not None:
            assert await second == hr.S_OK
            assert await ev.Wait(0, 0) == hr.RPC_S_CALLPENDING  # handed back once, not twice
        else:
            assert await ev.Wait(0, 0) == hr.S_OK
            assert await ev.Wait(0, 0) == hr.RPC_S_CALLPENDING


@pytest.mark.parametrize("reset", [False, True])
@pytest.mark.parametrize("end", ["abandoned", "late"])
@pytest.mark.asyncio
async def test_a_signal_that_comes_back_is_dropped_only_after_a_reset(
        rt: comsim.Runtime, end: str, reset: bool) -> None:  # R23, R2, R32
    """W is cancelled after its wake-up was taken in ("abandoned"), or before, so that the
    wake-up finds it gone ("late"); either way its signal goes back to the event, unless the
    event was reset after that signal came (a Reset after a Signal leaves it clear)."""
    ev = comsim.StdEvent()
    sta, t_w, t_n, got, box = await _covered_waiter(rt, ev)

    cancel_w = _canceller(box)
    if end == "late":
        await sta.run(cancel_w)  # W's wait has ended; W is still below N (R2), still listed
    ev.Signal()  # chooses W
    if reset:
        ev.Reset()
    # the wake-up is taken in
    await _then_uncover(sta, cancel_w if end == "abandoned" else _nothing, box, t_n, t_w)
    assert got == ["cancelled"]
    assert await ev.Wait(0, 0) == (hr.RPC_S_CALLPENDING if reset else hr.S_OK)
    assert await ev.Wait(0, 0) == hr.RPC_S_CALLPENDING


@pytest.mark.asyncio
async def test_a_woken_manual_reset_waiter_cancelled_loses_nothing(
        rt: comsim.Runtime) -> None:  # R23, R32
    ev = comsim.ManualResetEvent()
    sta, t_w, t_n, got, box = await _covered_waiter(rt, ev)
    ev.Signal()

    await _then_uncover(sta, _canceller(box), box, t_n, t_w)
    assert got == ["cancelled"]
    assert await ev.Wait(0, 0) == hr.S_OK  # still set: a manual-reset event stays set ...
    assert await ev.Wait(0, 0) == hr.S_OK
    ev.Reset()
    assert await ev.Wait(0, 0) == hr.RPC_S_CALLPENDING  # ... and nothing set it twice


@pytest.mark.asyncio
async def test_a_woken_waiter_that_returns_keeps_the_signal(
        rt: comsim.Runtime) -> None:  # R23, R2
    ev = comsim.StdEvent()
    sta, t_w, t_n, got, box = await _covered_waiter(rt, ev)
    ev.Signal()

    await _then_uncover(sta, _nothing, box, t_n, t_w)
    assert got == [hr.S_OK]  # W resumed on top with the signal ...
    assert await ev.Wait(0, 0) == hr.RPC_S_CALLPENDING  # ... which it consumed (auto-reset)


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_a_waiter_outside_apartments_cancelled_in_the_turn_it_is_woken(
        rt: comsim.Runtime) -> None:  # R23, R32
    """No apartment: the wake-up is a callback on the waiter's own loop, and the task is
    cancelled after it ran but before the task resumed (asyncio then throws CancelledError
    into a wait whose future holds True)."""
    ev = comsim.StdEvent()
    ready = asyncio.Event()

    async def waiter() -> int:
        ready.set()
        return await ev.Wait(0, INFINITE)

    t = asyncio.ensure_future(waiter())
    await ready.wait()  # t has registered its waiter (Wait's first step is synchronous)
    ev.Signal()  # the wake-up is queued on this loop ...
    await asyncio.sleep(0)  # (one loop turn, no time) ... and runs before this task resumes
    t.cancel()  # t has been woken but has not resumed yet
    with pytest.raises(asyncio.CancelledError):
        await t
    assert await ev.Wait(0, 0) == hr.S_OK  # the signal went back to the event (R23)
    assert await ev.Wait(0, 0) == hr.RPC_S_CALLPENDING


def test_a_waiter_whose_loop_has_closed_does_not_swallow_the_signal() -> None:  # R23
    """A waiter parked on a loop that then closed never takes its wake-up: the signal stays
    with the event."""
    ev = comsim.StdEvent()
    loop = asyncio.new_event_loop()

    async def park() -> Any:
        coro = ev.Wait(0, INFINITE)
        coro.send(None)  # its first step: the waiter is registered, the wait suspended
        return coro

    coro = loop.run_until_complete(park())
    loop.close()
    try:
        assert ev.Signal() == hr.S_OK  # chooses the parked waiter, whose loop is gone
        assert ev.is_set()
    finally:
        coro.close()
    assert asyncio.run(ev.Wait(0, 0)) == hr.S_OK
    assert not ev.is_set()


# --------------------------------------------------------------------------- seeded races
SEEDS = range(16)


def _one_signal_one_taker(seed: int, where: str, race: str) -> tuple[list[Any], bool]:
    """One ``Signal`` and a waiter W (``where``: in an STA, the MTA, or outside any apartment)
    that gives up around it (``race``: its 100 ms time-out expires at the very instant of the
    signal, or its task is cancelled right after it), and a second waiter W2 with a 200 ms
    time-out. Gives every outcome ("cancelled" or an HRESULT) and whether the event is set
    at the end."""

    async def main() -> tuple[list[Any], bool]:
        async with comsim.Runtime(deterministic=True, seed=seed) as rt:
            loop = asyncio.get_running_loop()
            ev = comsim.StdEvent()
            got: list[Any] = []
            w_in = comsim.ManualResetEvent()

            async def wait(ms: int, entered: Any = None) -> None:
                if entered is not None:
                    entered.Signal()
                try:
                    got.append(await ev.Wait(0, ms))
                except asyncio.CancelledError:
                    got.append("cancelled")
                    raise

            ms = 100 if race == "timeout" else INFINITE
            apt = (await rt.create_sta("a") if where == "sta"
                   else rt.mta if where == "mta" else None)
            t0 = loop.time()
            if apt is None:
                t_w = asyncio.ensure_future(wait(ms, w_in))
            else:
                t_w = asyncio.ensure_future(apt.run(wait, ms, w_in))
            await w_in.Wait(0, INFINITE)
            t_w2 = asyncio.ensure_future(wait(200))
            await wait_all_tasks_blocked()  # both are registered: W first
            if race == "timeout":
                assert loop.time() == t0  # (virtual time: it has not moved)
                loop.call_at(t0 + 0.1, ev.Signal)  # at the very instant of W's time-out
            else:
                ev.Signal()
                t_w.cancel()
            for t in (t_w, t_w2):
                try:
                    await t
                except asyncio.CancelledError:
                    pass
            return got, ev.is_set()

    return comsim.testing.run(main)


@pytest.mark.parametrize("race", ["timeout", "cancel"])
@pytest.mark.parametrize("where", ["sta", "mta", "outside"])
def test_a_signal_is_taken_exactly_once_whoever_gives_up(where: str, race: str) -> None:
    # R23 (auto-reset: one signal, one successful wait or the event left set), R32, R2
    for seed in SEEDS:
        got, still_set = _one_signal_one_taker(seed, where, race)
        assert len(got) == 2, (seed, got)  # both waiters ended
        # the signal is neither lost (W gave up: W2 or the event has it) nor doubled
        assert got.count(hr.S_OK) + still_set == 1, (seed, got, still_set)
