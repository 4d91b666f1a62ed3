"""Regression tests for the defects the fuzz suite found (``tests/fuzz``): a ``CoCancelCall``
that never returned once the cancelled call's apartment shut down in its grace period, and an
STA that shut itself down whose thread outlived the runtime. Each failed before its fix.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr

from .test_faults import _run_guarded


class ISlow(comsim.Interface):
    async def Work(self, seconds: float, entered: Any) -> str: ...


class Slow(comsim.CoClass, ISlow):
    cancel_policy = "cooperative"  # ignores the cancel: only the reply would end the grace

    async def Work(self, seconds: float, entered: Any) -> str:
        entered.Signal()  # the call is pending on the client's thread now
        await anyio.sleep(seconds)
        return "done"


async def _cocancelcall_while_caller_shuts_down(rt: comsim.Runtime, grace: float,
                                                gave_up: bool = False) -> Any:
    a, b = await rt.create_sta("a"), await rt.create_sta("b")

    async def serve() -> Any:
        return comsim.marshal_interface(Slow(), ISlow)

    stream = await b.run(serve)

    async def setup() -> int:
        comsim.CoEnableCallCancellation()
        return comsim.current_thread_id()

    tid = await a.run(setup)
    entered = comsim.ManualResetEvent()
    results: dict[str, Any] = {}

    async def client() -> None:
        proxy = comsim.unmarshal_interface(stream)
        if not gave_up:
            await proxy.Work(1.0, entered)
            return
        # the caller gives up first (R32: the call is cancelled as Cancel(0), and the cancel
        # that CoCancelCall sent still waits for its reply)
        with anyio.move_on_after(0.1):
            await proxy.Work(1.0, entered)
        results["client"] = "gave up"

    async def call() -> None:
        try:
            await a.run(client)
        except comsim.COMError as exc:
            results["client"] = exc.hresult

    async def cancel() -> None:
        async def canceller() -> int:
            return await comsim.CoCancelCall(tid, grace)

        results["CoCancelCall"] = await rt.mta.run(canceller)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        assert await entered.Wait(0, comsim.INFINITE) == hr.S_OK
        tg.start_soon(cancel)
        # CoCancelCall is in its grace period (the server ignores it), and the caller has given
        # up if it does: then the caller's apartment goes (R18)
        await anyio.sleep(0.3 if gave_up else 0.05)
        await a.shutdown()
    return results


@pytest.mark.parametrize("kind", ["threaded", "deterministic"])
@pytest.mark.parametrize("grace", [-1, 5.0])
def test_fuzz_cocancelcall_returns_when_callers_apartment_shuts_down(kind: str,
                                                                     grace: float) -> None:
    # R18 (nothing hangs), R31, R28: the call ends abandoned, so its grace period ends too
    results = _run_guarded(kind, lambda rt: _cocancelcall_while_caller_shuts_down(rt, grace))
    assert results["client"] == hr.RPC_E_DISCONNECTED
    assert results["CoCancelCall"] == hr.RPC_E_CALL_COMPLETE


@pytest.mark.threaded_only
def test_fuzz_sta_that_shut_itself_down_leaves_no_thread() -> None:  # R18
    async def main() -> int:
        async with comsim.Runtime() as rt:
            sta = await rt.create_sta("s")

            async def shut_self() -> None:
                apt = comsim.current_apartment()
                assert apt is not None
                await apt.shutdown()
                await asyncio.sleep(0)

            try:  # the unit may end before the teardown reaches it, or be cancelled by it
                await sta.run(shut_self)
            except comsim.COMError as exc:
                assert exc.hresult == hr.RPC_E_DISCONNECTED
        return sum(t.name == "comsim-s" for t in threading.enumerate())

    # the teardown may end while the thread still closes its loop: the race showed in about
    # 1 run in 100 before the fix
    left = [asyncio.run(main()) for _ in range(400)]
    assert left == [0] * 400


@pytest.mark.parametrize("kind", ["threaded", "deterministic"])
def test_fuzz_cocancelcall_returns_when_callers_apartment_shuts_down_after_caller_gave_up(
        kind: str) -> None:
    # R18, R31, R32 (fuzz seed 384): the caller's own cancel came after CoCancelCall's, so no
    # abandoning ends the grace period; the apartment's teardown does
    results = _run_guarded(
        kind, lambda rt: _cocancelcall_while_caller_shuts_down(rt, -1, gave_up=True))
    assert results["client"] == "gave up"
    assert results["CoCancelCall"] == hr.RPC_E_CALL_COMPLETE
