"""Synchronous calls that nest and call back, cancelled from other apartments at random
(R2, R13, R15, R28, R31, R32): every call ends with exactly one outcome and nothing hangs."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr


class INode(comsim.Interface):
    async def Hop(self, peers: list[Any], depth: int, tag: int) -> int: ...


class Node(comsim.CoClass, INode):
    async def Hop(self, peers: list[Any], depth: int, tag: int) -> int:
        if depth == 0:
            await anyio.sleep(0)  # a checkpoint: a cancel may find the method running
            return tag
        nxt = peers[(tag + depth) % len(peers)]
        return await nxt.Hop(peers, depth - 1, tag)  # nests; may call back into the caller


@pytest.mark.asyncio
async def test_nested_calls_with_random_cancels(rt: comsim.Runtime, seed: int) -> None:
    rng = random.Random(seed)
    apts = [await rt.create_sta(f"s{i}") for i in range(3)] + [rt.mta]

    async def serve() -> Any:
        return comsim.marshal_interface(Node(), INode, flags=comsim.MSHLFLAGS.TABLESTRONG)

    streams = [await apt.run(serve) for apt in apts]
    outcomes: Counter[str] = Counter()
    thread_ids: dict[int, int] = {}
    # R31: every call of the three STA threads is cancellable, also one that an STA makes
    # while serving another client's chain before its own client has started
    for i in range(3):
        assert await apts[i].run(comsim.CoEnableCallCancellation) == hr.S_OK
        thread_ids[i] = await apts[i].run(comsim.current_thread_id)

    async def client(i: int, n: int) -> None:
        peers = [comsim.unmarshal_interface(s) for s in streams]
        for k in range(n):
            try:
                got = await peers[(i + 1 + k) % len(peers)].Hop(peers, 1 + k % 3, k)
                assert got == k
                outcomes["ok"] += 1
            except comsim.COMError as exc:
                assert exc.hresult == hr.RPC_E_CALL_CANCELED, exc
                outcomes["cancelled"] += 1

    async def watchdog(n: int) -> list[int]:
        codes = []
        for _ in range(n):
            target = thread_ids.get(rng.randrange(3))
            if target is not None:
                codes.append(await comsim.CoCancelCall(target, 0))
            await anyio.sleep(0)
        return codes

    codes: list[int] = []

    async def run_watchdog() -> None:
        codes.extend(await apts[3].run(watchdog, 60))

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(apts[i].run, client, i, 20)
        tg.start_soon(run_watchdog)
    assert sum(outcomes.values()) == 60  # every call ended, with exactly one outcome
    granted = codes.count(hr.S_OK)
    # each granted cancel fails one call chain (a nested call's failure fails its caller too)
    assert (outcomes["cancelled"] >= 1) == (granted >= 1)
    assert outcomes["cancelled"] <= granted
    assert set(codes) <= {hr.S_OK, hr.E_NOINTERFACE, hr.RPC_E_CALL_CANCELED,
                          hr.RPC_E_CALL_COMPLETE}
