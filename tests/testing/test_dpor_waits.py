"""Exhaustive exploration beside code that polls the loop: ``wait_all_tasks_blocked`` runs beside
deliveries without making them barriers, and what follows its return is a new epoch; other
polling code still makes the deliveries it runs beside barriers (``comsim.testing._dpor``)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio

import comsim
from comsim.testing import explore, run, wait_all_tasks_blocked
from comsim.testing._dpor_watch import still_waiting, waiting_tasks
from comsim.testing._exhaustive import exhaustive

from .scenarios import log_in_c


class _Box:
    hit = False


async def polls_a_flag(rt: comsim.Runtime) -> bool:
    """Code outside any apartment polls a flag that ``a``'s unit sets, then reads the one that
    ``b``'s unit sets: which it sees depends on the order of the two deliveries, and on
    nothing a delivery touches."""
    a, b = await rt.create_sta("a"), await rt.create_sta("b")
    seen_a, seen_b = _Box(), _Box()

    async def set_a() -> None:
        seen_a.hit = True

    async def set_b() -> None:
        seen_b.hit = True

    tb = asyncio.ensure_future(b.run(set_b))
    ta = asyncio.ensure_future(a.run(set_a))
    while not seen_a.hit:
        await asyncio.sleep(0)
    seen = seen_b.hit
    await ta
    await tb
    return seen


async def calls_then_waits(rt: comsim.Runtime) -> tuple[str, ...]:
    """``a`` and ``b`` each call ``c``'s log twice; code outside any apartment starts both and
    waits for the loop to be quiet: the outcome is the order ``c`` saw the calls in."""
    a, b, log, caller = await log_in_c(rt)
    units = [asyncio.ensure_future(apt.run(caller, n)) for apt, n in ((a, "a"), (b, "b"))]
    await wait_all_tasks_blocked()
    assert all(u.done() for u in units)
    return tuple(log["obj"].seen)


def test_polling_code_keeps_the_deliveries_beside_it_ordered() -> None:
    found = exhaustive(polls_a_flag, 5000)
    assert found.exhausted
    assert set(explore(polls_a_flag, range(300))) == set(found) == {True, False}


def test_waiting_for_quiet_does_not_order_the_deliveries_beside_it() -> None:
    reduced = exhaustive(calls_then_waits, 10_000)
    every = exhaustive(calls_then_waits, 10_000, reduce=False)
    assert reduced.exhausted and every.exhausted
    assert set(reduced) == set(every)
    assert len(reduced) == 6
    assert set(explore(calls_then_waits, range(500))) <= set(reduced)
    assert reduced.runs * 10 <= every.runs


def test_the_tasks_waiting_for_quiet_are_told_from_other_polling() -> None:
    seen: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = False

        async def poll() -> None:
            while not stop:
                await asyncio.sleep(0)

        async with anyio.create_task_group() as tg:
            waiter = asyncio.ensure_future(wait_all_tasks_blocked())
            await asyncio.sleep(0)
            seen.append((still_waiting(waiter), len(waiting_tasks(loop))))
            tg.start_soon(poll)
            await asyncio.sleep(0)
            seen.append((still_waiting(waiter), len(waiting_tasks(loop))))
            stop = True
        await waiter
        seen.append((still_waiting(waiter), len(waiting_tasks(loop))))

    run(main)
    # alone, the waiter is all that is ready; beside a poller it is not; done, it waits no more
    assert seen == [(True, 1), (True, 0), (False, 0)]
