"""Code of another OS thread entering the deterministic runtime (R5, R31): its messages are
handed to the virtual-time loop's own thread, which they wake; nothing hangs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import pytest

import comsim

from ..helpers import ICalc, serve

pytestmark = [pytest.mark.asyncio, pytest.mark.deterministic_only]


async def _from_a_plain_thread(work: Any) -> dict[str, Any]:
    """Run ``asyncio.run(work())`` on a plain thread once the loop waits for it (a worker
    thread of the loop's is inside ``wait``: the loop sits in its selector)."""
    waiting = threading.Event()
    out: dict[str, Any] = {}

    def plain() -> None:
        waiting.wait()
        try:
            out["result"] = asyncio.run(work())
        except BaseException as exc:  # reported to the test
            out["error"] = exc

    thread = threading.Thread(target=plain, daemon=True)
    thread.start()

    def wait() -> None:
        waiting.set()
        thread.join()

    await anyio.to_thread.run_sync(wait)
    return out


async def test_a_plain_thread_runs_a_unit_in_an_sta(rt: comsim.Runtime) -> None:
    # R31: code outside any apartment, on a thread of its own, uses Apartment.run; before, its
    # message was queued with the loop's call_soon from the wrong thread and never delivered
    sta = await rt.create_sta("a")

    async def unit() -> str:
        return comsim.CoGetApartmentType().name

    out = await _from_a_plain_thread(lambda: sta.run(unit))
    assert out == {"result": "MAINSTA"}


async def test_a_plain_thread_calls_through_the_na(rt: comsim.Runtime) -> None:
    # R5: code in no apartment may enter the NA; from there it calls an STA's object
    sta = await rt.create_sta("a")
    _obj, stream = await serve(sta)
    cookie_holder: list[int] = []

    async def register() -> None:
        proxy: Any = comsim.unmarshal_interface(stream)
        cookie_holder.append(rt.git.RegisterInterfaceInGlobal(proxy, ICalc))
        proxy.Release()

    await rt.mta.run(register)

    async def in_na() -> int:
        proxy: Any = rt.git.GetInterfaceFromGlobal(cookie_holder[0], ICalc)
        try:
            return int(await proxy.Add(1, 2))
        finally:
            proxy.Release()

    out = await _from_a_plain_thread(lambda: rt.nta.run(in_na))
    assert out == {"result": 3}
