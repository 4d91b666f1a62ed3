"""Misuse of the runtime's own methods gets a clear answer: a COMError with its HRESULT, or a
RuntimeError that says what to do (never a lost call, a live apartment after the end, or a
timer set from the wrong thread)."""

from __future__ import annotations

import asyncio
import threading

import pytest

import comsim
from comsim import hresult as hr
from comsim.testing import VirtualTimeLoop

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("code", [hr.S_OK, hr.S_FALSE, 0x0004_0000, 0x7FFF_FFFF])
async def test_a_fault_that_is_a_success_code_is_refused(rt: comsim.Runtime, code: int) -> None:
    # R14: an injected fault fails the call; a success code would answer it with no result
    with pytest.raises(comsim.COMError) as err:
        rt.inject_fault("Add", code)
    assert err.value.hresult == hr.E_INVALIDARG
    assert "success code" in str(err.value)
    assert isinstance(err.value, ValueError)


async def test_failure_codes_both_ways_are_faults(rt: comsim.Runtime) -> None:
    rt.inject_fault("Add", hr.E_FAIL)  # signed
    rt.inject_fault("Add", hr.E_FAIL & 0xFFFF_FFFF)  # the same, unsigned
    assert len(rt._faults) == 2


async def test_the_na_after_the_runtime_has_ended_is_refused() -> None:
    # R5: the NA ends with its runtime; none is made after it
    loop = asyncio.get_running_loop()
    rt = comsim.Runtime(deterministic=isinstance(loop, VirtualTimeLoop))
    async with rt:
        pass
    with pytest.raises(RuntimeError, match="has ended"):
        _ = rt.nta


async def test_the_na_made_before_the_end_is_the_ended_one() -> None:
    loop = asyncio.get_running_loop()
    rt = comsim.Runtime(deterministic=isinstance(loop, VirtualTimeLoop))
    async with rt:
        nta = rt.nta
        assert nta.alive
    assert rt.nta is nta
    assert not nta.alive


@pytest.mark.deterministic_only
async def test_set_latency_before_entering_says_enter_first() -> None:
    rt = comsim.Runtime(deterministic=True)
    with pytest.raises(RuntimeError, match="enter the runtime first"):
        rt.set_latency(0.1)


@pytest.mark.threaded_only
async def test_set_latency_on_the_threaded_runtime_says_deterministic() -> None:
    rt = comsim.Runtime()
    with pytest.raises(RuntimeError, match="deterministic"):
        rt.set_latency(0.1)


async def test_scheduling_the_nas_shutdown_is_refused_as_the_mtas(rt: comsim.Runtime) -> None:
    # R18, R5: the NA, like the MTA, shuts down only with its runtime
    for apt in (rt.mta, rt.nta):
        with pytest.raises(comsim.COMError) as err:
            rt.schedule_shutdown(apt, 0)
        assert err.value.hresult == hr.E_FAIL
        assert apt.name in str(err.value)
    assert rt.nta.alive


async def test_a_shutdown_scheduled_from_an_apartment_thread_happens(
        rt: comsim.Runtime, kind: str) -> None:
    # R18: on the threaded runtime an apartment's code runs on its own thread; the timer is set
    # on the host loop's thread (asyncio's timers are not thread-safe)
    victim = await rt.create_sta("victim")
    other = await rt.create_sta("other")
    gone = comsim.ManualResetEvent()
    threads: list[int] = []

    async def schedule() -> None:
        threads.append(threading.get_ident())
        rt.schedule_shutdown(victim, 0.01)

    async def watch() -> None:  # in the victim: the teardown ends its COM wait (R18)
        try:
            await comsim.ManualResetEvent().Wait(0, comsim.INFINITE)
        finally:
            gone.Signal()

    watcher = asyncio.ensure_future(victim.run(watch))
    await other.run(schedule)
    if kind == "threaded":
        assert threads[0] != threading.get_ident()
    await gone.Wait(0, comsim.INFINITE)
    with pytest.raises(comsim.COMError) as err:
        await watcher
    assert err.value.hresult == hr.RPC_E_DISCONNECTED
    assert other.alive
