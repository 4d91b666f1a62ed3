"""An object's own AddRef and Release overrides are user code: whatever they raise is reported,
and comsim goes on (R7, R12, R17, R18); a teardown never stops half-way. Being user code, the
stub's Release runs in the object's own apartment, whoever lets the stub go (R1)."""

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


class Watched(comsim.CoClass, ICalc):
    """Notes where each of its Releases runs: the count left, the OS thread, the apartment."""

    def __init__(self) -> None:
        super().__init__()
        self.releases: list[tuple[int, str, Any]] = []

    async def Add(self, a: int, b: int) -> int:
        return a + b

    def Release(self) -> int:
        n = super().Release()
        self.releases.append((n, threading.current_thread().name, comsim.current_apartment()))
        return n


async def _watched() -> tuple[Watched, comsim.MarshalStream]:
    obj = Watched()
    stream = comsim.marshal_interface(obj, ICalc)
    obj.Release()  # the stub's is the only reference now
    return obj, stream


@pytest.mark.parametrize("route", ["proxy_release", "client_shutdown"])
async def test_the_last_release_from_another_apartment_runs_in_the_objects_own(
        rt: comsim.Runtime, kind: str, route: str) -> None:
    # R1 R7: the stub's reference goes from "client" -- (1) its proxy's last Release, (2) its
    # shutdown releasing its proxy manager (R18) -- but the object's own Release (user code)
    # runs in "home", on home's thread with home current, as COM's RemRelease reaches the stub
    # in the server's apartment; the count reaches 0 once home has taken the message in.
    # Before, it ran on the client's thread ('comsim-client'), in the client or in no apartment
    home = await rt.create_sta("home")
    client = await rt.create_sta("client")
    obj, stream = await home.run(_watched)

    async def use(release: bool) -> int:
        proxy = comsim.unmarshal_interface(stream)
        total = int(await proxy.Add(1, 2))
        if release:
            assert proxy.Release() == 0
        return total

    assert await client.run(use, route == "proxy_release") == 3
    if route == "client_shutdown":
        await client.shutdown()
    await drain(rt, home)
    count, thread, apartment = obj.releases[-1]
    assert count == 0
    if kind == "threaded":
        assert thread == "comsim-home"
    assert apartment is home
    assert [r for r in obj.releases if r[0] == 0] == [obj.releases[-1]]


async def test_na_code_on_the_objects_thread_releases_it_at_once(rt: comsim.Runtime,
                                                                  kind: str) -> None:
    # R1 R5 R7: NA code that "home"'s thread entered holds a proxy to home's object (bound to
    # the NA); its last Release is on the object's own thread, so the object's Release runs
    # there and then, with home current
    home = await rt.create_sta("home")
    obj, stream = await home.run(_watched)

    async def in_na() -> tuple[int, str, Any]:
        proxy = comsim.unmarshal_interface(stream)
        assert int(await proxy.Add(1, 2)) == 3
        assert proxy.Release() == 0
        return obj.releases[-1]

    count, thread, apartment = await home.run(rt.nta.run, in_na)
    assert count == 0
    if kind == "threaded":
        assert thread == "comsim-home"
    assert apartment is home


class NeutralWatched(Watched):
    threading_model = "Neutral"
    made: list[NeutralWatched] = []

    def __init__(self) -> None:
        super().__init__()
        NeutralWatched.made.append(self)


async def test_an_na_objects_last_release_enters_the_na_on_the_callers_thread(
        rt: comsim.Runtime, kind: str) -> None:
    # R1 R5 R7: the NA has no thread: a proxy's last Release from "client" releases the NA
    # object at once, on the client's thread, with the NA current
    client = await rt.create_sta("client")
    NeutralWatched.made.clear()

    async def use() -> None:
        proxy = await comsim.CoCreateInstance(NeutralWatched, ICalc)
        assert int(await proxy.Add(1, 2)) == 3
        assert proxy.Release() == 0

    await client.run(use)
    (obj,) = NeutralWatched.made
    count, thread, apartment = obj.releases[-1]
    assert count == 0
    if kind == "threaded":
        assert thread == "comsim-client"
    assert apartment is rt.nta
