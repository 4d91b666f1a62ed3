"""A latency row for the neutral apartment (R5): an STA->NA call through a proxy, beside a
plain method awaited directly, in blocks that alternate inside the same STA; and, for the same
run, an STA->STA call (``comsim_sta_na_sta``).

An STA->NA call makes no thread switch: the method runs on the caller's thread with the NA
current, so it should cost a small multiple of a direct await (the argument and result
copies, R11), far below a cross-thread round trip.

Only comsim's public API is used."""

from __future__ import annotations

import asyncio
from typing import Any

import comsim

from .baselines import ROUNDS, Plain, Samples, Tick, no_tick, sample


class INaCalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...  # type: ignore[empty-body]


class NaCalc(comsim.CoClass, INaCalc):
    threading_model = "Neutral"

    async def Add(self, a: int, b: int) -> int:
        return a + b


class StaCalc(comsim.CoClass, INaCalc):
    threading_model = "Apartment"

    async def Add(self, a: int, b: int) -> int:
        return a + b


async def comsim_sta_na_sta(n: int, *, rounds: int = ROUNDS, tick: Tick = no_tick
                            ) -> tuple[list[float], list[float], list[float]]:
    """Samples (seconds) of an STA->NA call, a direct await and an STA->STA call, measured in
    alternating blocks in the same STA of the threaded runtime."""
    async with comsim.Runtime() as rt:
        caller = await rt.create_sta("a")
        server = await rt.create_sta("b")
        state: dict[str, Any] = {}

        async def serve() -> comsim.MarshalStream:
            obj = await comsim.CoCreateInstance(StaCalc, INaCalc)  # in "b"
            return comsim.marshal_interface(obj, INaCalc)

        stream = await server.run(serve)

        async def make() -> None:
            state["na"] = await comsim.CoCreateInstance(NaCalc, INaCalc)  # a proxy to the NA
            state["plain"] = Plain()
            state["sta"] = comsim.unmarshal_interface(stream)

        async def block(which: str, size: int) -> list[float]:
            obj = state[which]
            return await sample(lambda: obj.Add(1, 2), size)

        await caller.run(make)
        na, plain, sta = Samples(), Samples(), Samples()
        size = max(20, n // max(1, rounds))
        for _ in range(rounds):
            na.add_block(await caller.run(block, "na", size))
            plain.add_block(await caller.run(block, "plain", size))
            sta.add_block(await caller.run(block, "sta", size))
            tick()
        return na, plain, sta


def measure_nta(n: int, rounds: int, tick: Tick) -> tuple[list[float], list[float]]:
    """``rows.Measure`` for the row: STA->NA beside a direct await."""
    na, plain, _sta = asyncio.run(comsim_sta_na_sta(n, rounds=rounds, tick=tick))
    return na, plain
