"""What crosses by reference is decided by the class, not by what an instance answers (R1,
R11). comsim's events are free-threaded: their class says so (``_com_free_threaded_``), and
they cross by reference. Before, the marker was asked of the instance, so a value whose
``__getattr__`` answers any name (an attribute dictionary, a mock) crossed by reference —
shared, unsynchronised, between apartments on two threads — and a CoClass with such a
``__getattr__`` was usable directly from any apartment."""

from __future__ import annotations

from typing import Any

import pytest

import comsim
from comsim import hresult as hr

from ..helpers import pair

pytestmark = pytest.mark.asyncio


class Settings:
    """An attribute dictionary: any name it has no entry for reads as True."""

    def __init__(self) -> None:
        self.__dict__["data"] = {"x": 1}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.data.get(name, True)

    def __setattr__(self, name: str, value: Any) -> None:
        self.data[name] = value

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.data)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__["data"] = state


class IMutate(comsim.Interface):
    async def Mutate(self, settings: Any) -> int: ...


class Mutator(comsim.CoClass, IMutate):
    async def Mutate(self, settings: Any) -> int:
        settings.x = 99  # the server's copy (R11)
        return int(settings.x)

    def __getattr__(self, name: str) -> Any:  # answers any name, the marker too
        if name.startswith("__"):
            raise AttributeError(name)
        return True


async def test_a_value_whose_getattr_answers_any_name_is_copied(rt: comsim.Runtime) -> None:
    # R11: arguments cross by value
    p = await pair(rt, Mutator, IMutate)

    async def use() -> tuple[int, int]:
        settings = Settings()
        seen = await p.proxy.Mutate(settings)
        return seen, settings.x

    assert await p.client.run(use) == (99, 1)  # before: (99, 99), the caller's own object


async def test_an_object_whose_getattr_answers_any_name_stays_in_its_apartment(
        rt: comsim.Runtime) -> None:
    # R1: only its own apartment uses the object itself; marshalling it from another fails
    p = await pair(rt, Mutator, IMutate)

    async def misuse() -> int:
        try:
            comsim.marshal_interface(p.obj, IMutate)
        except comsim.COMError as exc:
            return exc.hresult
        return hr.S_OK

    assert await p.client.run(misuse) == hr.RPC_E_WRONG_THREAD  # before: S_OK


async def test_events_still_cross_by_reference(rt: comsim.Runtime) -> None:
    # comsim's events are free-threaded (their class says so): the server signals the
    # caller's own event
    class ISignal(comsim.Interface):
        async def Set(self, event: Any) -> None: ...

    class Signaller(comsim.CoClass, ISignal):
        async def Set(self, event: Any) -> None:
            event.Signal()

    p = await pair(rt, Signaller, ISignal)
    event = comsim.ManualResetEvent()

    async def use() -> None:
        await p.proxy.Set(event)

    await p.client.run(use)
    assert event.is_set()
