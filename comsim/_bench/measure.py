"""comsim's side of each row: the calls measured, in blocks that alternate with a baseline's.

Only comsim's public API is used (``comsim``, ``comsim.testing``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import comsim
import comsim.testing

from .baselines import (
    ROUNDS,
    Placement,
    Plain,
    Samples,
    Tick,
    baseline_one_loop,
    baseline_two_loops,
    no_tick,
    pin,
    sample,
)

#: the server object's cancel policy (``POLICY=cooperative`` to compare)
COOP = os.environ.get("POLICY", "interrupt")


class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...  # type: ignore[empty-body]
    async def Block(self, gate: Any) -> int: ...  # type: ignore[empty-body]


class Calc(comsim.CoClass, ICalc):
    cancel_policy = COOP

    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Block(self, gate: Any) -> int:
        await gate.Wait(0, comsim.INFINITE)
        return 1


AsyncICalc = comsim.async_interface(ICalc)


def block_size(n: int, rounds: int) -> int:
    """Calls per block when ``n`` calls are split over ``rounds`` rounds (at least 20)."""
    return max(20, n // max(1, rounds))


async def pair(rt: comsim.Runtime, client: comsim.Apartment, server: comsim.Apartment,
               n: int, kind: str, baseline: Placement | None = None, *,
               rounds: int = ROUNDS, tick: Tick = no_tick) -> tuple[list[float], list[float]]:
    """comsim's samples, and (given the ``baseline`` threads' placement) the two-loop
    baseline's, measured from the caller's thread in blocks that alternate with comsim's
    (``rounds`` each, in alternating order), so that drift of the machine hits both alike."""

    async def make() -> Any:
        return comsim.marshal_interface(Calc(), ICalc)

    stream = await server.run(make)
    state: dict[str, Any] = {}

    async def setup() -> None:
        p = comsim.unmarshal_interface(stream)
        state["proxy"] = p
        f = p.QueryInterface(comsim.ICallFactory)
        state["call"] = f.CreateCall(AsyncICalc)

    await client.run(setup)

    async def block(count: int) -> list[float]:
        p, call = state["proxy"], state["call"]
        if kind == "sync":
            return await sample(lambda: p.Add(1, 2), count)
        if kind == "async":

            async def once() -> int:
                call.Begin_Add(1, 2)
                return await call.Finish_Add()

            return await sample(once, count)
        if kind == "cancel":
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            gate = comsim.ManualResetEvent()
            out: list[float] = []
            for i in range(count + 50):
                call.Begin_Block(gate)
                t0 = time.perf_counter()
                await cancel.Cancel(0)
                try:
                    await call.Finish_Block()
                except comsim.COMError:
                    pass
                if i >= 50:
                    out.append(time.perf_counter() - t0)
            gate.Signal()
            return out
        raise ValueError(kind)

    if baseline is None:
        return await client.run(block, n), []
    ours, base = Samples(), Samples()
    size = block_size(n, rounds)
    for i in range(rounds):
        if i % 2:
            base.add_block(baseline_two_loops(size, baseline))  # blocks the host: fine
            ours.add_block(await client.run(block, size))
        else:
            ours.add_block(await client.run(block, size))
            base.add_block(baseline_two_loops(size, baseline))
        tick()
    return ours, base


async def comsim_same_apartment(n: int, *, rounds: int = ROUNDS, tick: Tick = no_tick
                                ) -> tuple[list[float], list[float]]:
    """A call on an object in the caller's own apartment (R8: unmarshalled at home it is the
    object itself), and its baseline, a plain object's method awaited directly, in blocks
    that alternate inside the same apartment."""
    async with comsim.Runtime() as rt:
        sta = await rt.create_sta("a")
        state: dict[str, Any] = {}

        async def make() -> None:
            state["obj"] = comsim.unmarshal_interface(comsim.marshal_interface(Calc(), ICalc))
            state["plain"] = Plain()

        async def block(which: str, size: int) -> list[float]:
            obj = state[which]
            return await sample(lambda: obj.Add(1, 2), size)

        await sta.run(make)
        ours, base = Samples(), Samples()
        size = block_size(n, rounds)
        for _ in range(rounds):
            ours.add_block(await sta.run(block, "obj", size))
            base.add_block(await sta.run(block, "plain", size))
            tick()
        return ours, base


async def comsim_threaded(n: int, client: str, server: str, kind: str = "sync",
                          baseline: Placement | None = None, cpu: int | None = None,
                          cpus: Placement = (None, None), *, rounds: int = ROUNDS,
                          tick: Tick = no_tick) -> tuple[list[float], list[float]]:
    """``cpu``: ``Runtime(cpu=cpu)``; ``cpus``: pin the client's and the server's apartment
    thread apart (each apartment is one thread; ``Apartment.run`` takes a plain function)."""
    async with comsim.Runtime(cpu=cpu) as rt:
        apts = {"sta1": await rt.create_sta("sta1"), "sta2": await rt.create_sta("sta2"),
                "mta": rt.mta}
        if cpus != (None, None):
            await apts[client].run(pin, cpus[0])
            await apts[server].run(pin, cpus[1])
        return await pair(rt, apts[client], apts[server], n, kind, baseline,
                          rounds=rounds, tick=tick)


def comsim_deterministic(n: int) -> list[float]:
    """``n`` STA->STA calls' times on the deterministic runtime (virtual-time loop)."""
    out: list[float] = []

    async def main() -> None:
        async with comsim.Runtime(deterministic=True, seed=1) as rt:
            a = await rt.create_sta("a")
            b = await rt.create_sta("b")
            out.extend((await pair(rt, a, b, n, "sync"))[0])

    comsim.testing.run(main)
    return out


def deterministic_rounds(n: int, *, rounds: int = ROUNDS, tick: Tick = no_tick
                         ) -> tuple[list[float], list[float]]:
    """The deterministic runtime's STA->STA call and the one-loop baseline, in alternating
    rounds."""
    ours, base = Samples(), Samples()
    size = block_size(n, rounds)
    for i in range(rounds):
        if i % 2:
            base.add_block(asyncio.run(baseline_one_loop(size)))
            ours.add_block(comsim_deterministic(size))
        else:
            ours.add_block(comsim_deterministic(size))
            base.add_block(asyncio.run(baseline_one_loop(size)))
        tick()
    return ours, base
