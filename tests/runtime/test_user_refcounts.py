"""An object's own AddRef and Release overrides are user code: whatever they raise is reported,
and comsim goes on (R7, R12, R17, R18); a teardown never stops half-way."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import comsim

from ..helpers import ICalc, drain

pytestmark = pytest.mark.asyncio


class Fragile(comsim.CoClass, ICalc):
    """Its last Release raises (a clean-up that fails)."""

    released_in: list[str] = []  # the threads its last Release ran on

    async def Add(self, a: int, b: int) -> int:
        return a + b

    def Release(self) -> int:
        n = super().Release()
        if n == 0:
            Fragile.released_in.append(threading.current_thread().name)
            raise RuntimeError("clean-up failed in the last Release")
        return n


async def _make() -> comsim.MarshalStream:
    obj = Fragile()
    stream = comsim.marshal_interface(obj, ICalc)
    obj.Release()  # the stub's is the only reference now
    return stream


@pytest.fixture(autouse=True)
def _fresh() -> None:
    Fragile.released_in.clear()


async def test_a_release_that_raises_does_not_hang_the_homes_shutdown(
        rt: comsim.Runtime) -> None:
    # R18: the teardown releases the stub's reference; before, the exception stopped the
    # teardown half-way and the shutdown never returned
    home = await rt.create_sta("home")
    await home.run(_make)
    with pytest.warns(RuntimeWarning, match="Fragile.Release"):
        await home.shutdown()
    assert not home.alive
    assert len(Fragile.released_in) == 1


async def test_a_release_that_raises_does_not_hang_a_clients_shutdown(
        rt: comsim.Runtime) -> None:
    # R7, R18: the client's teardown releases its proxy manager, the last reference; R1: the
    # object's Release runs in home, which takes the release in as a message
    home = await rt.create_sta("home")
    client = await rt.create_sta("client")
    stream = await home.run(_make)

    async def use() -> int:
        proxy = comsim.unmarshal_interface(stream)
        return int(await proxy.Add(1, 2))

    assert await client.run(use) == 3
    with pytest.warns(RuntimeWarning, match="Fragile.Release"):
        await client.shutdown()
        await drain(rt, home)
    assert not client.alive
    assert len(Fragile.released_in) == 1
    assert await home.run(lambda: 5) == 5  # the home apartment goes on


async def test_a_proxys_release_and_a_disconnect_do_not_raise_the_objects_exception(
        rt: comsim.Runtime) -> None:
    # R12: Release is always allowed; R17: CoDisconnectObject releases the stub's reference
    home = await rt.create_sta("home")
    client = await rt.create_sta("client")
    stream = await home.run(_make)

    async def release() -> int:
        proxy = comsim.unmarshal_interface(stream)
        return int(proxy.Release())

    with pytest.warns(RuntimeWarning, match="Fragile.Release"):
        assert await client.run(release) == 0
        await drain(rt, home)  # R1: the object's Release runs in home, as a message
    obj_holder: list[Any] = []

    async def make_and_disconnect() -> None:
        obj = Fragile()
        comsim.marshal_interface(obj, ICalc)
        obj_holder.append(obj)
        obj.Release()
        comsim.CoDisconnectObject(obj)  # the stub's reference, the last, goes

    with pytest.warns(RuntimeWarning, match="Fragile.Release"):
        await home.run(make_and_disconnect)
    assert len(Fragile.released_in) == 2
