"""Explore a cancel race under many seeds: all three of R29's stages, found without events.

A client begins a call and cancels it 5 ms later; the server works for 3 ms; every message takes
a seeded random 0-8 ms to travel (virtual time). Depending on the draws the cancel finds the
request still queued, the server running, the server finished (its work done, the reply
dropped), or the call already complete. ``comsim.testing.explore`` runs the scenario once per
seed and keeps the first seed of each outcome, which replays exactly.
"""

from __future__ import annotations

from typing import Any

import anyio

import comsim
from comsim import hresult as hr
from comsim.testing import capture_trace, explore


class IWork(comsim.Interface):
    async def Work(self) -> str: ...


class Work(comsim.CoClass, IWork):
    async def Work(self) -> str:
        await anyio.sleep(0.003)
        return "done"


AsyncIWork = comsim.async_interface(IWork)


async def scenario(rt: comsim.Runtime) -> str:
    rt.set_latency(lambda rng: rng.uniform(0.0, 0.008))  # every channel, seeded
    ui = await rt.create_sta("ui")
    worker = await rt.create_sta("worker")

    async def serve() -> comsim.MarshalStream:
        return comsim.marshal_interface(Work(), IWork)

    async def client(stream: comsim.MarshalStream) -> int:
        factory = comsim.unmarshal_interface(stream).QueryInterface(comsim.ICallFactory)
        call: Any = factory.CreateCall(AsyncIWork)
        call.Begin_Work()
        await anyio.sleep(0.005)
        code = await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(0)
        try:
            await call.Finish_Work()
        except comsim.COMError:
            pass
        return int(code)

    stream = await worker.run(serve)
    with capture_trace() as events:
        code = await ui.run(client, stream)
        await anyio.sleep(0.1)  # virtual time: let every message in flight land
    stages = [e["stage"] for e in events.events("call.cancelled")]
    if code == hr.RPC_E_CALL_COMPLETE:
        return "completed before the cancel"
    return stages[0] if stages else "cancelled (stage unknown)"


def main(seeds: range = range(200)) -> dict[str, int]:
    found = explore(scenario, seeds)
    for outcome, seed in sorted(found.items(), key=lambda kv: kv[1]):
        share = f"{found.counts[outcome]} of {found.runs} runs"
        print(f"{outcome!s:28} first at seed {seed:3}  ({share})")
    return dict(found)


if __name__ == "__main__":
    main()
