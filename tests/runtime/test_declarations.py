"""Interfaces and classes are checked where they are written: a method a class does not define
fails with E_NOTIMPL (the interface's declaration is no implementation), and an interface may
not redeclare IUnknown's own methods (R12, R13)."""

from __future__ import annotations

from typing import Any

import pytest

import comsim
from comsim import hresult as hr

from ..helpers import ICalc, pair


class IPair(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Mul(self, a: int, b: int) -> int: ...


class HalfDone(comsim.CoClass, IPair):
    async def Add(self, a: int, b: int) -> int:
        return a + b


class Forgot(comsim.CoClass, ICalc):
    pass


class Later(Forgot):
    async def Add(self, a: int, b: int) -> int:  # a subclass defines it after all
        return 10 * (a + b)


@pytest.mark.asyncio
async def test_a_method_the_class_does_not_define_fails_with_e_notimpl(
        rt: comsim.Runtime) -> None:
    # R13: before, the interface's `...` body ran as the method and the call gave None, S_OK
    p = await pair(rt, HalfDone, IPair)

    async def use() -> tuple[int, int]:
        try:
            await p.proxy.Mul(2, 3)
        except comsim.COMError as exc:
            return await p.proxy.Add(2, 3), exc.hresult
        return -1, hr.S_OK

    assert await p.client.run(use) == (5, hr.E_NOTIMPL)


@pytest.mark.asyncio
async def test_not_implemented_at_home_and_through_a_subclass(rt: comsim.Runtime) -> None:
    sta = await rt.create_sta("home")

    async def at_home() -> tuple[Any, int]:
        got: Any = None
        try:
            await Forgot().Add(1, 2)
        except comsim.COMError as exc:
            got = (exc.hresult, "Forgot.Add" in str(exc))
        return got, await Later().Add(1, 2)

    assert await sta.run(at_home) == ((hr.E_NOTIMPL, True), 30)


@pytest.mark.parametrize("name", ["QueryInterface", "AddRef", "Release"])
def test_an_interface_may_not_redeclare_iunknowns_methods(name: str) -> None:
    # R12: every proxy has IUnknown's own Release; an interface's would hide it, and
    # proxy.Release() would give a coroutine instead of dropping the count
    with pytest.raises(comsim.COMError) as err:
        type("IBad", (comsim.Interface,), {name: _async_stub(name)})
    assert err.value.hresult == hr.E_INVALIDARG
    assert name in str(err.value)


def _async_stub(name: str) -> Any:
    async def method(self: Any) -> int: ...

    method.__name__ = name
    return method
