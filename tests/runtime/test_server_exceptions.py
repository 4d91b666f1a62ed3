"""R14: whatever a server method raises is its call's outcome, GeneratorExit included (only a
server task's coroutine being closed ends it), wherever the object lives."""

from __future__ import annotations

import pytest

import comsim
from comsim import hresult as hr

from ..helpers import pair


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
