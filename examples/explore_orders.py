"""Every delivery order of a cancel race, once: exhaustive exploration with partial-order
reduction, beside the random pump.

A client in STA ``ui`` begins ``Work`` on an object in STA ``worker``, makes a round trip to a
third STA, ``other``, and cancels the call (R28). ``Work`` itself calls ``other`` before it
returns. No message has any latency: only the order in which the pump delivers the pending
messages decides where the cancel finds the call (R29: still queued, running, finished) or
whether the call completed first. ``explore(strategy="exhaustive")`` runs every distinct order
once — deliveries to different apartments commute, so orders that differ only by such swaps
are run once — and says when it has run them all (``found.exhausted``).
"""

from __future__ import annotations

from typing import Any

import comsim
from comsim import hresult as hr
from comsim.testing import capture_trace, explore, wait_all_tasks_blocked


class IStep(comsim.Interface):
    async def Step(self) -> int: ...


class Step(comsim.CoClass, IStep):
    async def Step(self) -> int:
        return 1


class IWork(comsim.Interface):
    async def Work(self, step: Any) -> str: ...


class Work(comsim.CoClass, IWork):
    async def Work(self, step: Any) -> str:
        await step.Step()
        return "done"


AsyncIWork = comsim.async_interface(IWork)


async def scenario(rt: comsim.Runtime) -> str:
    ui, worker, other = [await rt.create_sta(n) for n in ("ui", "worker", "other")]

    async def publish(cls: type, iface: type) -> comsim.MarshalStream:
        return comsim.marshal_interface(cls(), iface, flags=comsim.MSHLFLAGS.TABLESTRONG)

    work = await worker.run(publish, Work, IWork)
    step = await other.run(publish, Step, IStep)

    async def client() -> int:
        to_other = comsim.unmarshal_interface(step, IStep)
        factory = comsim.unmarshal_interface(work).QueryInterface(comsim.ICallFactory)
        call: Any = factory.CreateCall(AsyncIWork)
        call.Begin_Work(to_other)
        await to_other.Step()  # a round trip while the call is on its way
        code = await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(0)
        try:
            await call.Finish_Work()
        except comsim.COMError:
            pass
        return int(code)

    with capture_trace() as events:
        code = await ui.run(client)
        await wait_all_tasks_blocked()  # let every message in flight land
    stages = [e["stage"] for e in events.events("call.cancelled")]
    if code == hr.RPC_E_CALL_COMPLETE:
        return "completed before the cancel"
    return stages[0] if stages else "cancelled (stage unknown)"


def main() -> dict[str, Any]:
    lines: list[str] = []

    def say(text: str) -> None:
        print(text)
        lines.append(text)

    every = explore(scenario, range(20_000), strategy="exhaustive")
    say(f"exhaustive: {every.runs} runs, {every.interleavings} distinct delivery orders, "
        f"every order run: {every.exhausted}")
    for outcome, run in sorted(every.items(), key=lambda kv: kv[1]):
        say(f"  {outcome!s:28} first in run {run:5}  ({every.counts[outcome]} runs)")
    sampled = explore(scenario, range(500))
    say(f"random: {sampled.runs} runs, {len(sampled)} outcomes, all of them found by "
        f"exhaustive: {set(sampled) <= set(every)}")
    return {"exhaustive": dict(every), "exhausted": every.exhausted, "runs": every.runs,
            "random": dict(sampled), "lines": lines}


if __name__ == "__main__":
    main()
