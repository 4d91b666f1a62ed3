"""Activation: ``CoCreateInstance`` and the threading models (R33), on both runtimes.

Every cell of the creator x threading-model table: where the object is constructed, and
whether the creator gets the object itself or a proxy. The expected table here is written out
by hand from COM-RULES.md, not read from the core's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import comsim
from comsim import ApartmentType, hresult

from ..helpers import ICalc, hresult_of


class IWhere(comsim.Interface):
    async def Home(self) -> tuple[str, str]: ...


class Here(comsim.CoClass, IWhere):
    """Says where it was constructed and where its methods run."""

    def __init__(self) -> None:
        super().__init__()
        apt = comsim.current_apartment()
        assert apt is not None
        self.born_in = apt.name

    async def Home(self) -> tuple[str, str]:
        apt = comsim.current_apartment()
        assert apt is not None
        return self.born_in, apt.name


class HereApartment(Here):
    threading_model = "Apartment"


class HereFree(Here):
    threading_model = "Free"


class HereBoth(Here):
    threading_model = "Both"


class HereNeutral(Here):
    threading_model = "Neutral"


class HereLegacy(Here):
    threading_model = None


MODELS: dict[str | None, type[Here]] = {
    "Apartment": HereApartment, "Free": HereFree, "Both": HereBoth, "Neutral": HereNeutral,
    None: HereLegacy,
}

# creator -> (the creator's apartment, {model: the apartment the object lives in}); from R33:
# "main" is the main STA, "other" an ordinary STA
EXPECTED: dict[str, tuple[str, dict[str | None, str]]] = {
    "main STA": ("main", {"Apartment": "main", "Free": "MTA", "Both": "main", "Neutral": "NA",
                          None: "main"}),
    "STA": ("other", {"Apartment": "other", "Free": "MTA", "Both": "other", "Neutral": "NA",
                      None: "main"}),
    "MTA": ("MTA", {"Apartment": "HostSTA", "Free": "MTA", "Both": "MTA", "Neutral": "NA",
                    None: "main"}),
    "NA on an STA": ("NA", {"Apartment": "other", "Free": "MTA", "Both": "NA", "Neutral": "NA",
                            None: "main"}),
    "NA on the MTA": ("NA", {"Apartment": "HostSTA", "Free": "MTA", "Both": "NA",
                             "Neutral": "NA", None: "main"}),
    "NA from no apartment": ("NA", {"Apartment": "HostSTA", "Free": "MTA", "Both": "NA",
                                    "Neutral": "NA", None: "main"}),
}


async def run_as(rt: comsim.Runtime, creator: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``fn`` as code of ``creator`` (STAs "main" and "other" exist)."""
    by_name = {a.name: a for a in rt.apartments}
    if creator == "main STA":
        return await by_name["main"].run(fn)
    if creator == "STA":
        return await by_name["other"].run(fn)
    if creator == "MTA":
        return await rt.mta.run(fn)
    if creator == "NA on an STA":
        return await by_name["other"].run(rt.nta.run, fn)
    if creator == "NA on the MTA":
        return await rt.mta.run(rt.nta.run, fn)
    return await rt.nta.run(fn)


@pytest.mark.parametrize("model", list(MODELS), ids=[str(m) for m in MODELS])
@pytest.mark.parametrize("creator", list(EXPECTED))
@pytest.mark.asyncio
async def test_placement_table(rt: comsim.Runtime, creator: str, model: str | None) -> None:
    # R33: every cell of the placement table; the object itself in the creator's apartment,
    # else a proxy bound there (R1: it lives where it was constructed)
    await rt.create_sta("main")
    await rt.create_sta("other")
    own, homes = EXPECTED[creator]

    async def create() -> tuple[bool, tuple[str, str], str]:
        obj = await comsim.CoCreateInstance(MODELS[model], IWhere)
        here = comsim.current_apartment()
        assert here is not None
        return isinstance(obj, comsim.Proxy), await obj.Home(), here.name

    is_proxy, (born_in, runs_in), caller = await run_as(rt, creator, create)
    assert caller == own
    assert born_in == homes[model] == runs_in
    assert is_proxy is (homes[model] != own)


@pytest.mark.asyncio
async def test_default_threading_model_is_both(rt: comsim.Runtime) -> None:
    # R33: a class that says nothing is "Both": created where its creator runs
    assert comsim.CoClass.threading_model == "Both"
    assert Here.threading_model == "Both"
    sta = await rt.create_sta("s")

    async def create() -> bool:
        obj = await comsim.CoCreateInstance(Here, IWhere)
        return isinstance(obj, Here) and obj.born_in == "s"

    assert await sta.run(create) is True
    assert await rt.mta.run(create) is False  # born in the MTA, not in "s"


@pytest.mark.asyncio
async def test_legacy_model_without_any_sta_makes_the_host_sta_the_main_sta(
        rt: comsim.Runtime) -> None:
    # R33: None from the MTA with no STA: COM creates the host STA, which is the main STA (R4)
    async def create() -> tuple[str, str]:
        obj = await comsim.CoCreateInstance(HereLegacy, IWhere)
        return await obj.Home()

    assert await rt.mta.run(create) == ("HostSTA", "HostSTA")
    host = {a.name: a for a in rt.apartments}["HostSTA"]
    assert host.type is ApartmentType.MAINSTA
    later = await rt.create_sta("later")
    assert later.type is ApartmentType.STA


@pytest.mark.asyncio
async def test_host_sta_is_made_once(rt: comsim.Runtime) -> None:
    # R33: at most one host STA, made on first need, an ordinary STA named HostSTA
    await rt.create_sta("main")
    assert "HostSTA" not in [a.name for a in rt.apartments]

    async def create() -> tuple[str, str]:
        obj = await comsim.CoCreateInstance(HereApartment, IWhere)
        return await obj.Home()

    async with anyio.create_task_group() as tg:  # two creators at once
        for _ in range(2):
            tg.start_soon(rt.mta.run, create)
    assert await rt.mta.run(create) == ("HostSTA", "HostSTA")
    names = [a.name for a in rt.apartments]
    assert names.count("HostSTA") == 1
    host = names.index("HostSTA")
    assert isinstance(rt.apartments[host], comsim.Apartment)
    assert rt.apartments[host].type is ApartmentType.STA


@pytest.mark.asyncio
async def test_reserved_names(rt: comsim.Runtime) -> None:
    # R3, R5, R33: MTA, NA and HostSTA are the runtime's own names, taken or not
    for name in ("NA", "HostSTA", "MTA"):
        with pytest.raises(ValueError, match="reserved"):
            await rt.create_sta(name)
    assert [a.name for a in rt.apartments] == []
    assert rt.mta.name == "MTA"
    with pytest.raises(ValueError, match="reserved"):
        await rt.create_sta("MTA")
    assert [a.name for a in rt.apartments] == ["MTA"]


# --------------------------------------------------------------------------- errors
class Broken(comsim.CoClass, IWhere):
    threading_model = "apartment"  # wrong case: not a model


class Numbered(comsim.CoClass, IWhere):
    threading_model = 1  # type: ignore[assignment]


class RaisesCom(comsim.CoClass, IWhere):
    threading_model = "Free"

    def __init__(self) -> None:
        super().__init__()
        raise comsim.COMError(hresult.CLASS_E_CLASSNOTAVAILABLE, "no")


class RaisesOther(comsim.CoClass, IWhere):
    threading_model = "Free"

    def __init__(self) -> None:
        super().__init__()
        raise KeyError("boom")


@pytest.mark.asyncio
async def test_from_no_apartment(rt: comsim.Runtime) -> None:
    # R33 (R4): activation needs an apartment
    with pytest.raises(comsim.COMError) as info:
        await comsim.CoCreateInstance(Here, IWhere)
    assert info.value.hresult == hresult.CO_E_NOTINITIALIZED
    assert "CoCreateInstance" in str(info.value)


@pytest.mark.parametrize("cls", [int, ICalc, Broken, Numbered, "Here", Here],
                         ids=["int", "interface", "bad-model", "int-model", "str", "instance"])
@pytest.mark.asyncio
async def test_not_a_registered_class(rt: comsim.Runtime, cls: Any) -> None:
    # R33: not a CoClass subclass, or an unknown threading model: REGDB_E_CLASSNOTREG
    sta = await rt.create_sta("s")

    async def create() -> int:
        target = Here() if cls is Here else cls
        try:
            await comsim.CoCreateInstance(target, IWhere)
        except comsim.COMError as exc:
            return exc.hresult
        return 0

    assert await sta.run(create) == hresult.REGDB_E_CLASSNOTREG


@pytest.mark.asyncio
async def test_iface_not_an_interface(rt: comsim.Runtime) -> None:
    # R33 (choice): E_INVALIDARG, also a TypeError
    sta = await rt.create_sta("s")

    async def create(iface: Any) -> int:
        try:
            await comsim.CoCreateInstance(HereFree, iface)
        except TypeError as exc:
            assert isinstance(exc, comsim.COMError)
            return exc.hresult
        return 0

    for bad in (Here, "IWhere", None):
        assert await sta.run(create, bad) == hresult.E_INVALIDARG


@pytest.mark.parametrize("model", ["Both", "Free", "Neutral"])
@pytest.mark.asyncio
async def test_object_lacks_the_interface(rt: comsim.Runtime, model: str) -> None:
    # R33: E_NOINTERFACE, at home or elsewhere; the object is released
    sta = await rt.create_sta("s")
    made: list[Any] = []

    class Plain(comsim.CoClass, IWhere):
        threading_model = model

        def __init__(self) -> None:
            super().__init__()
            made.append(self)

        async def Home(self) -> tuple[str, str]:
            return ("", "")

    async def create() -> int:
        return await hresult_of(comsim.CoCreateInstance(Plain, ICalc))

    assert await sta.run(create) == hresult.E_NOINTERFACE
    assert len(made) == 1
    assert made[0]._com_refs.count == 0  # released
    assert await sta.run(lambda: comsim.CoCreateInstance(Plain, comsim.IUnknown)) is not None


@pytest.mark.parametrize("where", ["home", "elsewhere"])
@pytest.mark.asyncio
async def test_constructor_failures(rt: comsim.Runtime, where: str) -> None:
    # R33: COMError(hr) from the constructor gives hr; any other exception E_FAIL (choice)
    apt = rt.mta if where == "home" else await rt.create_sta("s")

    async def create(cls: Any) -> comsim.COMError:
        try:
            await comsim.CoCreateInstance(cls, IWhere)
        except comsim.COMError as exc:
            return exc
        raise AssertionError("no error")

    exc = await apt.run(create, RaisesCom)
    assert exc.hresult == hresult.CLASS_E_CLASSNOTAVAILABLE
    exc = await apt.run(create, RaisesOther)
    assert exc.hresult == hresult.E_FAIL
    assert "KeyError" in str(exc) and "RaisesOther" in str(exc)
    assert isinstance(exc.__cause__, KeyError)


def test_hresults_of_activation() -> None:
    # R33: the codes of COM-RULES.md's table
    assert hresult.REGDB_E_CLASSNOTREG == 0x80040154 - 0x1_0000_0000
    assert hresult.CLASS_E_NOAGGREGATION == 0x80040110 - 0x1_0000_0000
    assert hresult.CLASS_E_CLASSNOTAVAILABLE == 0x80040111 - 0x1_0000_0000
    assert hresult.name(0x80040154) == "REGDB_E_CLASSNOTREG"


# --------------------------------------------------------------------------- the COM wait
class Slow(comsim.CoClass, IWhere):
    threading_model = None  # the main STA

    def __init__(self) -> None:
        super().__init__()
        self.born_in = "main"

    async def Home(self) -> tuple[str, str]:
        return ("main", "main")


@pytest.mark.asyncio
async def test_waiting_for_the_constructor_is_a_com_wait(rt: comsim.Runtime) -> None:
    # R33 (R2): while the creator waits for cls() to run in another apartment, its STA starts
    # queued units, nested on its thread
    main = await rt.create_sta("main")
    creator = await rt.create_sta("creator")
    log: list[str] = []
    box: dict[str, Any] = {}
    started = comsim.ManualResetEvent()
    creating = comsim.ManualResetEvent()

    async def blocker() -> None:  # keeps the main STA busy by a non-COM await
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        box["release"] = (loop, fut)
        started.Signal()
        with anyio.move_on_after(30):
            await fut
        log.append("blocker ends")

    async def create() -> str:
        creating.Signal()
        obj = await comsim.CoCreateInstance(Slow, IWhere)
        log.append("created")
        return type(obj).__name__

    async def probe() -> int:
        log.append("probe")
        loop, fut = box["release"]
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))
        return comsim.current_thread_id()

    async with anyio.create_task_group() as tg:
        tg.start_soon(main.run, blocker)
        await started.Wait(0, comsim.INFINITE)
        result: dict[str, Any] = {}

        async def go() -> None:
            result["create"] = await creator.run(create)

        tg.start_soon(go)
        await creating.Wait(0, comsim.INFINITE)
        probe_thread = await creator.run(probe)
    assert result["create"] == "Proxy_IWhere"
    assert probe_thread == creator.thread_id
    assert log == ["probe", "blocker ends", "created"]


class Counted(comsim.CoClass, IWhere):
    """Free-threaded: constructed in the MTA; notes every instance made."""

    threading_model = "Free"
    made: list[Counted] = []

    def __init__(self) -> None:
        super().__init__()
        Counted.made.append(self)

    async def Home(self) -> tuple[str, str]:
        return "MTA", "MTA"


@pytest.mark.deterministic_only
@pytest.mark.asyncio
async def test_a_creator_cancelled_after_the_constructor_ran_leaks_nothing(
        rt: comsim.Runtime) -> None:
    # R33 with R32 and R7: the object was made in the MTA, its marshal data is on its way to
    # the creator when the creator is cancelled; nobody will unmarshal the data, so it is
    # released and the object's stub disconnects (no strong reference is left)
    Counted.made = []
    a = await rt.create_sta("a")
    rt.set_latency(1.0, source="MTA")  # the constructor's result takes 1 s to come back

    async def create() -> str:
        with anyio.move_on_after(0.5):
            await comsim.CoCreateInstance(Counted, IWhere)
            return "created"
        return "cancelled"

    with comsim.testing.capture_trace() as events:
        assert await a.run(create) == "cancelled"
        await anyio.sleep(2)  # virtual time: every message in flight lands
    assert len(Counted.made) == 1
    gone = events.events("stub.disconnected")
    assert [(e["object"], e["reason"]) for e in gone] == [("Counted", "released")]


class CountedHere(comsim.CoClass, IWhere):
    """Apartment-threaded: notes every instance made."""

    threading_model = "Apartment"
    made: list[CountedHere] = []

    def __init__(self) -> None:
        super().__init__()
        CountedHere.made.append(self)

    async def Home(self) -> tuple[str, str]:
        return "s0", "s0"


@pytest.mark.deterministic_only
@pytest.mark.asyncio
async def test_na_creator_cancelled_before_its_constructor_unit_arrives(
        rt: comsim.Runtime) -> None:
    # R33 with R32 and R5 (fuzz seed 70597): NA code on s0's thread creates an
    # apartment-threaded object, so cls() is to run as a unit of s0; the creator is cancelled
    # and its cancel reaches s0 before the unit does (the deterministic pump may deliver them
    # so). The unit never starts, and nothing waits for it: before the fix it was queued behind
    # the creator's own unit, which waited for its end, and nothing could ever run again.
    CountedHere.made = []
    s0 = await rt.create_sta("s0")
    slow: list[float] = []
    rt.set_latency(lambda rng: slow.pop() if slow else 0.0, target="s0")

    async def create() -> str:
        with anyio.move_on_after(0.5):
            slow.append(1.0)  # the unit of cls() takes 1 s to reach s0; the cancel, none
            await comsim.CoCreateInstance(CountedHere, IWhere)
            return "created"
        return "cancelled"

    async def unit() -> str:
        return await rt.nta.run(create)

    assert await s0.run(unit) == "cancelled"
    await anyio.sleep(2)  # virtual time: every message in flight lands
    assert CountedHere.made == []
    assert slow == []  # the unit's message was the one delayed
