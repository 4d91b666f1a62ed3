"""R14: whatever a server method raises is its call's outcome, GeneratorExit included (only a
server task's coroutine being closed ends it), wherever the object lives."""

from __future__ import annotations

import pytest

import comsim
from comsim import hresult as hr

from ..helpers import new_call, pair


class IBoom(comsim.Interface):
    async def Boom(self) -> str: ...
    async def Fine(self) -> str: ...


class Boom(comsim.CoClass, IBoom):
    async def Boom(self) -> str:
        raise GeneratorExit("the method's own")

    async def Fine(self) -> str:
        return "fine"


@pytest.mark.asyncio
async def test_a_method_raising_generator_exit_fails_its_call_with_the_exception_kept(
        rt: comsim.Runtime) -> None:
    # before, in an STA or the MTA: RPC_E_SERVERFAULT "the server task ended abnormally" with
    # nothing kept, and asyncio logged the task's exception; the NA gave the method's
    p = await pair(rt, Boom, IBoom)

    async def use() -> tuple[int, str, str]:
        try:
            await p.proxy.Boom()
        except comsim.COMError as exc:
            return exc.hresult, str(exc), await p.proxy.Fine()
        return hr.S_OK, "", ""

    code, text, after = await p.client.run(use)
    assert code == hr.RPC_E_SERVERFAULT
    assert "Boom.Boom raised GeneratorExit" in text
    assert after == "fine"  # the server goes on


class IGet(comsim.Interface):
    async def Get(self, code: int) -> int: ...


AsyncIGet = comsim.async_interface(IGet)


class RaisesCode(comsim.CoClass, IGet):
    async def Get(self, code: int) -> int:
        raise comsim.COMError(code, "the method failed")


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [hr.S_OK, hr.S_FALSE])
async def test_a_comerror_with_a_success_code_is_a_server_fault(rt: comsim.Runtime,
                                                                code: int) -> None:
    # R14 (choice): raised, a success code cannot make the call succeed; before, the caller
    # got None, synchronously and from Finish_, and the fault was lost
    p = await pair(rt, RaisesCode, IGet)

    async def use() -> list[tuple[int, str]]:
        got = []
        call = new_call(p.proxy, AsyncIGet)
        call.Begin_Get(code)
        for aw in (p.proxy.Get(code), call.Finish_Get()):
            try:
                await aw
                got.append((hr.S_OK, ""))
            except comsim.COMError as exc:
                got.append((exc.hresult, str(exc)))
        return got

    for got_code, text in await p.client.run(use):
        assert got_code == hr.RPC_E_SERVERFAULT
        assert f"RaisesCode.Get raised COMError: {hr.name(code)}" in text
