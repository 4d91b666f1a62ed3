"""comsim.begin: a Pythonic async context manager over Begin_/Finish_ (R22, R28, R32)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult

from ..helpers import pair

pytestmark = pytest.mark.asyncio


class IWork(comsim.Interface):
    async def Work(self, gate: Any) -> str: ...
    async def Fail(self) -> None: ...


class Work(comsim.CoClass, IWork):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def Work(self, gate: Any) -> str:
        self.log.append("start")
        await gate.Wait(0, comsim.INFINITE)
        self.log.append("end")
        return "done"

    async def Fail(self) -> None:
        raise comsim.COMError(hresult.E_FAIL, "no")


async def _setup(rt: comsim.Runtime) -> tuple[comsim.Apartment, Any, list[str]]:
    log: list[str] = []
    p = await pair(rt, lambda: Work(log), IWork, server="worker", client="ui", client_first=True,
                   proxy=False)
    return p.client, p.stream, log


async def test_begin_then_finish_gives_the_result(rt: comsim.Runtime) -> None:  # R22
    ui, stream, _log = await _setup(rt)
    gate = comsim.ManualResetEvent()

    async def client() -> tuple[str, int]:
        proxy = comsim.unmarshal_interface(stream)
        async with comsim.begin(proxy.Work, gate) as call:
            assert await call.wait(0) == hresult.RPC_S_CALLPENDING  # R23
            gate.Signal()
            value = await call.finish()
            return value, await call.wait(0)

    value, after = await ui.run(client)
    assert value == "done"
    assert after == hresult.RPC_S_CALLPENDING  # Finish_ cleared the event (R23)


async def test_body_raising_cancels_and_still_finishes(rt: comsim.Runtime) -> None:  # R28 R32
    ui, stream, _log = await _setup(rt)
    gate = comsim.ManualResetEvent()

    async def client() -> tuple[str, Any]:
        proxy = comsim.unmarshal_interface(stream)
        with pytest.raises(KeyError):
            async with comsim.begin(proxy.Work, gate) as call:
                call.call.AddRef()  # keep the call object past the helper's Release
                raise KeyError("body failed")
        # COM's rule held: Finish_ ran, so the call object is idle again
        code = call.call.Begin_Work(gate)  # a new call on the same call object
        assert code == hresult.S_OK
        gate.Signal()
        return await call.call.Finish_Work(), call

    value, _call = await ui.run(client)
    assert value == "done"


async def test_cancelled_body_finishes_shielded(rt: comsim.Runtime) -> None:  # R32
    ui, stream, _log = await _setup(rt)
    gate = comsim.ManualResetEvent()

    async def client() -> Any:
        proxy = comsim.unmarshal_interface(stream)
        holder: list[Any] = []
        with anyio.CancelScope() as scope:
            async with comsim.begin(proxy.Work, gate) as call:
                call.call.AddRef()  # keep the call object past the helper's Release
                holder.append(call)
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        pending = holder[0]
        assert pending.finished  # Finish_ was performed on the way out
        assert pending.call.Begin_Work(gate) == hresult.S_OK  # idle again: no RPC_E_CALL_PENDING
        gate.Signal()
        return await pending.call.Finish_Work()

    assert await ui.run(client) == "done"


async def test_normal_exit_without_finish_raises_the_failure(rt: comsim.Runtime) -> None:  # R22
    ui, stream, _log = await _setup(rt)

    async def client() -> int:
        proxy = comsim.unmarshal_interface(stream)
        with pytest.raises(comsim.COMError) as exc:
            async with comsim.begin(proxy.Fail):
                pass
        return exc.value.hresult

    assert await ui.run(client) == hresult.E_FAIL


async def test_begin_needs_a_proxy_method(rt: comsim.Runtime) -> None:
    with pytest.raises(comsim.COMError) as exc:
        async with comsim.begin(print):
            pass
    assert exc.value.hresult == hresult.E_INVALIDARG


@pytest.mark.parametrize("method", ["AddRef", "QueryInterface", "Release"])
async def test_begin_refuses_iunknowns_methods(rt: comsim.Runtime, method: str) -> None:
    # R19: a call object has the methods of the proxy's interfaces, not IUnknown's; before,
    # begin() leaked "RuntimeError: async generator raised StopIteration"
    ui, stream, _ = await _setup(rt)

    async def client() -> tuple[int, str]:
        proxy = comsim.unmarshal_interface(stream)
        with pytest.raises(comsim.COMError) as exc:
            async with comsim.begin(getattr(proxy, method)):
                pass
        return exc.value.hresult, str(exc.value)

    code, text = await ui.run(client)
    assert code == hresult.E_INVALIDARG
    assert f"not {method}: IUnknown's methods" in text
