"""R32 while a nested unit holds the STA: cancelling the task that waits in ``Cancel(seconds)``
ends the call cancelled at once, and cancelling the task that waits in a cancellable
synchronous call tells the server at once; only the code's resumption waits until its unit
is on top again (R2).

Unit A waits; unit B starts nested on the same STA (A's wait is a COM wait) and holds the
thread with a non-COM await. A's task is cancelled while B is on top, and the server's reply
comes before B ends. Before, the cancel's bookkeeping itself waited for B: the reply came
first, so ``Cancel`` had not ended the call (``Finish_`` gave the result), and the server of
the synchronous call was told only after B ended (it had finished by then)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr

from ..helpers import hresult_of, new_call, pair

pytestmark = [pytest.mark.asyncio, pytest.mark.deterministic_only]  # virtual time


class IWork(comsim.Interface):
    async def Work(self, seconds: float) -> str: ...
    async def Ping(self) -> int: ...


AsyncIWork = comsim.async_interface(IWork)


class Work(comsim.CoClass, IWork):
    cancel_policy = "interrupt"

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    async def Work(self, seconds: float) -> str:
        try:
            await anyio.sleep(seconds)
        except BaseException:
            self.log.append("interrupted")
            raise
        self.log.append("finished")
        return "done"

    async def Ping(self) -> int:
        return 1


class CoopWork(Work):
    cancel_policy = "cooperative"  # a cancel does not stop it: its reply comes at 10 ms


async def _nested_hold(proxy: Any) -> None:
    """B: a unit that starts nested while A waits, and holds the thread for 20 ms."""
    await proxy.Ping()
    await anyio.sleep(0.020)


async def _under_a_nested_hold(p: Any, a: Any) -> None:
    """Run unit ``a`` on the client STA, and 1 ms later B (``_nested_hold``), which starts
    nested in ``a``'s COM wait and holds the thread until 21 ms; both to their end."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(p.client.run, a)
        await anyio.sleep(0.001)
        tg.start_soon(p.client.run, _nested_hold, p.proxy)


async def test_a_cancelled_cancel_waiter_ends_the_call_at_once(rt: comsim.Runtime) -> None:  # R32
    p = await pair(rt, CoopWork, IWork)
    seen: dict[str, Any] = {}

    async def a() -> None:
        call = new_call(p.proxy, AsyncIWork)
        call.Begin_Work(0.010)
        await anyio.sleep(0.0005)  # the server runs it now
        facet = call.QueryInterface(comsim.ICancelMethodCalls)
        with anyio.move_on_after(0.003):  # while B holds the thread
            await facet.Cancel(comsim.RPC_C_CANCEL_INFINITE_TIMEOUT)
        seen["test_cancel"] = facet.TestCancel()
        seen["finish"] = await hresult_of(call.Finish_Work())

    await _under_a_nested_hold(p, a)
    assert seen == {"test_cancel": hr.RPC_E_CALL_CANCELED, "finish": hr.RPC_E_CALL_CANCELED}
    assert p.obj.log == ["finished"]  # the server ran on (cooperative): no guarantee it stops


async def test_a_cancelled_sync_caller_tells_the_server_at_once(rt: comsim.Runtime) -> None:  # R32
    p = await pair(rt, Work, IWork)

    async def a() -> None:
        comsim.CoEnableCallCancellation()  # R31: its calls are cancellable
        with anyio.move_on_after(0.003):  # while B holds the thread
            await p.proxy.Work(0.010)

    await _under_a_nested_hold(p, a)
    assert p.obj.log == ["interrupted"]  # told at 3 ms, not when B ended at 21 ms


async def test_a_cancelled_finish_cancels_the_call_at_once(rt: comsim.Runtime) -> None:  # R32
    p = await pair(rt, Work, IWork)
    seen: dict[str, Any] = {}

    async def a() -> None:
        call = new_call(p.proxy, AsyncIWork)
        call.Begin_Work(0.010)
        await anyio.sleep(0.0005)  # the server runs it now
        with anyio.move_on_after(0.003):  # while B holds the thread
            await call.Finish_Work()
        seen["begin_again"] = call.Begin_Work(0.0)  # R32: the call object is ready again
        seen["finish"] = await call.Finish_Work()

    await _under_a_nested_hold(p, a)
    assert seen == {"begin_again": hr.S_OK, "finish": "done"}
    assert p.obj.log == ["interrupted", "finished"]  # told at 3.5 ms, not at 21 ms
