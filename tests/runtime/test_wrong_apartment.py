"""R1: only code in an object's apartment uses the object itself. Marshalling it, registering
it in the GIT or passing it in a value from another apartment fails with RPC_E_WRONG_THREAD
and takes no reference; a proxy is what crosses."""

from __future__ import annotations

from typing import Any

import pytest

import comsim
from comsim import hresult as hr

from ..helpers import Calc, ICalc, pair

pytestmark = pytest.mark.asyncio


class IKeep(comsim.Interface):
    async def Keep(self, value: Any) -> str: ...


class Keeper(comsim.CoClass, IKeep):
    async def Keep(self, value: Any) -> str:
        return type(value).__name__


async def _refs(obj: Any) -> int:
    n = int(obj.AddRef())
    obj.Release()
    return n - 1


async def test_an_object_from_another_apartment_is_refused_everywhere(
        rt: comsim.Runtime) -> None:
    # R1: the object itself is used only in its apartment; R11: a proxy is what crosses
    p = await pair(rt, Keeper, IKeep, server="srv", client="cli")
    home = await rt.create_sta("home")

    async def make() -> Any:
        return Calc()

    obj = await home.run(make)
    before = await home.run(_refs, obj)

    async def misuse() -> list[int]:
        codes = []
        for attempt in (lambda: comsim.marshal_interface(obj, ICalc),
                        lambda: rt.git.RegisterInterfaceInGlobal(obj, ICalc)):
            try:
                attempt()
                codes.append(hr.S_OK)
            except comsim.COMError as exc:
                codes.append(exc.hresult)
        try:
            await p.proxy.Keep(obj)  # a value that holds it
            codes.append(hr.S_OK)
        except comsim.COMError as exc:
            codes.append(exc.hresult)
        return codes

    assert await p.client.run(misuse) == [hr.RPC_E_WRONG_THREAD] * 3
    assert await home.run(_refs, obj) == before  # nothing was taken

    async def rightly() -> str:  # from its own apartment, it crosses as a proxy
        return str(await comsim.unmarshal_interface(stream).Keep(obj))

    stream = await p.server.run(lambda: comsim.marshal_interface(p.obj, IKeep))
    assert (await home.run(rightly)).startswith("Proxy")
