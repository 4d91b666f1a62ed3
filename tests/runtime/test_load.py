"""Under load: N asynchronous calls in flight across four apartments (three STAs and the MTA,
each both a server and a client), with seeded random cancels (R21, R28, R29, R18).

Every call ends with exactly one outcome -- its result, or RPC_E_CALL_CANCELED when Cancel
gave S_OK -- every call object is idle again after Finish_ (Begin_ works a second time), every
cancelled call is reported in exactly one of R29's stages (a `queued` one never dispatched),
and once the Runtime is left no comsim thread and no task remains.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr
from comsim.testing import capture_trace

N = 300
STAGES = {"queued", "running", "finished"}


class IWork(comsim.Interface):
    async def Work(self, x: int) -> int: ...
    async def Ping(self) -> str: ...


AsyncIWork = comsim.async_interface(IWork)


class Worker(comsim.CoClass, IWork):
    async def Work(self, x: int) -> int:
        for _ in range(x % 4):
            await anyio.sleep(0)  # checkpoints: a cancel may catch the method running
        return 2 * x

    async def Ping(self) -> str:
        return "pong"


def _plans(rng: random.Random, n_apartments: int, n_calls: int) -> list[list[dict[str, Any]]]:
    """For each client apartment: its calls, each to another apartment, some to be cancelled
    a few calls later (or at once)."""
    plans: list[list[dict[str, Any]]] = [[] for _ in range(n_apartments)]
    for k in range(n_calls):
        client = k % n_apartments
        target = rng.choice([j for j in range(n_apartments) if j != client])
        index = len(plans[client])
        cancel_at = index + rng.randrange(0, 6) if rng.random() < 0.45 else None
        # before cancelling: nothing, a COM wait for this very call to end (the cancel then
        # finds it complete), or a COM wait for an earlier call (meanwhile this STA serves
        # incoming calls and the servers move on)
        plans[client].append({"x": k, "target": target, "cancel_at": cancel_at,
                              "wait": rng.choice(["none", "self", "earlier"]),
                              "earlier": rng.randrange(0, index + 1),
                              "yield": rng.random() < 0.3})
    return plans


async def _client(rt: comsim.Runtime, cookies: list[int], plan: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """One apartment's share: begin every call, cancel some on the way, finish them all, then
    use every call object a second time."""
    proxies = {j: rt.git.GetInterfaceFromGlobal(cookies[j], IWork)
               for j in {p["target"] for p in plan}}
    records: list[dict[str, Any]] = []

    async def cancel_due(upto: int) -> None:
        for r in records:
            if r["cancel_at"] is not None and r["cancel_at"] <= upto and "cancel" not in r:
                if r["wait"] != "none":
                    other = r if r["wait"] == "self" else records[r["earlier"]]
                    sync = other["call"].QueryInterface(comsim.ISynchronize)
                    assert await sync.Wait(0, comsim.INFINITE) == hr.S_OK  # R23
                    sync.Release()
                cancel = r["call"].QueryInterface(comsim.ICancelMethodCalls)
                r["cancel"] = await cancel.Cancel(0)
                cancel.Release()

    for i, p in enumerate(plan):
        factory = proxies[p["target"]].QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(AsyncIWork)
        factory.Release()
        assert call.Begin_Work(p["x"]) == hr.S_OK
        records.append({**p, "call": call})
        await cancel_due(i)
        if p["yield"]:
            await anyio.sleep(0)  # let replies and cancels flow
    await cancel_due(len(plan) + 10)

    for r in records:  # R22: one Finish_ each, one outcome each
        try:
            r["outcome"] = ("ok", await r["call"].Finish_Work())
        except comsim.COMError as exc:
            r["outcome"] = ("hr", exc.hresult)
        cancel = r["call"].QueryInterface(comsim.ICancelMethodCalls)
        r["after_test"] = cancel.TestCancel()  # R28: no call in progress
        cancel.Release()
        r["again_begin"] = r["call"].Begin_Work(r["x"] + 100_000)  # R21: idle again
    for r in records:
        try:
            r["again"] = ("ok", await r["call"].Finish_Work())
        except comsim.COMError as exc:
            r["again"] = ("hr", exc.hresult)
        r["call"].Release()
        del r["call"]
    # each server apartment takes messages in order (threaded runtime): a round trip through
    # it comes after every cancel this apartment sent it
    for p in proxies.values():
        assert await p.Ping() == "pong"
        p.Release()
    return records


@pytest.mark.asyncio
async def test_many_calls_with_random_cancels(kind: str, seed: int) -> None:  # R21 R29 R18
    rng = random.Random(seed)
    plans = _plans(rng, 4, N)
    before = set(threading.enumerate())
    real0 = time.perf_counter()
    with capture_trace() as events:
        async with comsim.Runtime(deterministic=kind == "deterministic",
                                  seed=seed if kind == "deterministic" else None) as rt:
            apts = [await rt.create_sta(f"load{i}") for i in range(3)] + [rt.mta]

            async def register() -> int:
                return rt.git.RegisterInterfaceInGlobal(Worker(), IWork)

            cookies = [await apt.run(register) for apt in apts]
            results: list[list[dict[str, Any]]] = [[] for _ in apts]

            async def drive(i: int) -> None:
                results[i] = await apts[i].run(_client, rt, cookies, plans[i])

            async with anyio.create_task_group() as tg:
                for i in range(len(apts)):
                    tg.start_soon(drive, i)
            if rt.deterministic:
                await anyio.sleep(0.01)  # virtual time: every message in flight has landed
    real = time.perf_counter() - real0

    records = [r for rs in results for r in rs]
    assert len(records) == N
    cancelled = 0
    for r in records:
        x, code = r["x"], r.get("cancel")
        if r["cancel_at"] is None:
            assert code is None
            assert r["outcome"] == ("ok", 2 * x), r
        elif code == hr.S_OK:  # R28: the call ended cancelled
            cancelled += 1
            assert r["outcome"] == ("hr", hr.RPC_E_CALL_CANCELED), r
        else:  # R28: the reply was in before the cancel
            assert code == hr.RPC_E_CALL_COMPLETE, r
            assert r["outcome"] == ("ok", 2 * x), r
        assert r["after_test"] == hr.RPC_E_CALL_COMPLETE, r
        assert r["again_begin"] == hr.S_OK, r
        assert r["again"] == ("ok", 2 * (x + 100_000)), r
    assert cancelled > 0, "no cancel ever caught a call in flight"
    assert any(r.get("cancel") == hr.RPC_E_CALL_COMPLETE for r in records)

    # the trace agrees: one completion per call, one stage per cancelled call (R29)
    work_calls = {e["call_id"] for e in events.events("call.sent", method="Work")}
    assert len(work_calls) == 2 * N
    completed = Counter(e["call_id"] for e in events.events("call.completed", method="Work"))
    assert set(completed) == work_calls and set(completed.values()) == {1}
    outcome_codes = Counter(e["hresult"] for e in events.events("call.completed", method="Work"))
    assert outcome_codes == {hr.S_OK: 2 * N - cancelled, hr.RPC_E_CALL_CANCELED: cancelled}
    stages = events.events("call.cancelled")
    by_call = Counter(e["call_id"] for e in stages)
    assert set(by_call.values()) <= {1}, "a cancelled call reported in two stages"
    assert len(by_call) == cancelled, "every cancelled call ends in one of R29's stages"
    assert {e["stage"] for e in stages} <= STAGES
    dispatched = {e["call_id"] for e in events.events("call.dispatched")}
    for e in stages:
        if e["stage"] == "queued":  # R29: the decision is atomic; never dispatched
            assert e["call_id"] not in dispatched, e

    # R18: leaving the Runtime leaves no comsim thread and no task behind
    left = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("comsim-")]
    assert left == []
    assert not [t for t in threading.enumerate() if t.name.startswith("comsim-load")]
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current] == []
    assert real < 3.0, f"{N} calls took {real:.2f} s"
