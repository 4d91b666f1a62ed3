"""Identity: one proxy manager per object per apartment, one proxy per interface, one count
(R34; R8, R10, R11, R12, R25 where they meet it)."""

from __future__ import annotations

from typing import Any

import pytest

import comsim
from comsim import MSHLFLAGS, hresult

from ..helpers import Calc, ICalc, IPing, drain, serve
from .test_marshal import ahr_of, hr_of


class IOther(comsim.Interface):
    async def Ping(self) -> str: ...


class Both(comsim.CoClass, ICalc, IOther):
    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Ping(self) -> str:
        return "both"


class IHolder(comsim.Interface):
    async def Hold(self, value: Any) -> None: ...
    async def Give(self) -> Any: ...
    async def Same(self, a: Any, b: Any) -> bool: ...


class Holder(comsim.CoClass, IHolder):
    def __init__(self) -> None:
        super().__init__()
        self.held: Any = None

    async def Hold(self, value: Any) -> None:
        self.held = value

    async def Give(self) -> Any:
        return self.held

    async def Same(self, a: Any, b: Any) -> bool:
        return a is b


@pytest.mark.asyncio
async def test_at_home_the_object_is_its_own_interface_pointer(rt: comsim.Runtime) -> None:
    # R34: obj.QueryInterface(I) is obj, for every interface and IUnknown
    b = await rt.create_sta("b")

    async def use() -> list[bool]:
        obj = Both()
        return [obj.QueryInterface(ICalc) is obj, obj.QueryInterface(IOther) is obj,
                obj.QueryInterface(comsim.IUnknown) is obj]

    assert await b.run(use) == [True, True, True]


@pytest.mark.asyncio
async def test_every_route_gives_the_same_proxy(rt: comsim.Runtime) -> None:
    # R34: normal, table-strong and table-weak data, the GIT and data marshalled from a proxy
    # all give the one manager's proxy for the interface
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def export() -> tuple[Any, list[comsim.MarshalStream], int]:
        obj = Calc()
        streams = [comsim.marshal_interface(obj, ICalc, flags=f) for f in MSHLFLAGS]
        return obj, streams, rt.git.RegisterInterfaceInGlobal(obj, ICalc)

    _obj, streams, cookie = await b.run(export)

    async def use() -> list[bool]:
        first = comsim.unmarshal_interface(streams[0])
        others = [comsim.unmarshal_interface(s) for s in streams[1:]]
        others.append(rt.git.GetInterfaceFromGlobal(cookie, ICalc))
        again = comsim.unmarshal_interface(comsim.marshal_interface(first, ICalc))
        others.append(again)
        return [p is first for p in others] + [await first.Add(1, 2) == 3]

    assert await a.run(use) == [True] * 5


@pytest.mark.asyncio
async def test_one_proxy_per_interface_and_one_unknown(rt: comsim.Runtime) -> None:
    # R34: asking again for an interface gives the same object; IUnknown from any proxy of the
    # manager gives one and the same object; == and hash are identity
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _obj, stream = await serve(b, Both, ICalc, flags=MSHLFLAGS.TABLESTRONG)

    async def use() -> dict[str, Any]:
        calc = comsim.unmarshal_interface(stream)
        other = calc.QueryInterface(IOther)
        unk_a = calc.QueryInterface(comsim.IUnknown)
        unk_b = other.QueryInterface(comsim.IUnknown)
        return {
            "calc again": other.QueryInterface(ICalc) is calc,
            "other again": calc.QueryInterface(IOther) is other,
            "unknown": unk_a is unk_b,
            "unknown differs from calc": unk_a is not calc,
            "eq": calc == comsim.unmarshal_interface(stream, ICalc),
            "ne": calc != other,
            "hash": hash(calc) == hash(comsim.unmarshal_interface(stream)),
            "unknown calls": await unk_a.Ping(),  # IUnknown's proxy has every interface
        }

    assert await a.run(use) == {"calc again": True, "other again": True, "unknown": True,
                                "unknown differs from calc": True, "eq": True, "ne": True,
                                "hash": True, "unknown calls": "both"}


@pytest.mark.asyncio
async def test_two_objects_are_told_apart(rt: comsim.Runtime) -> None:
    # R34: a.QueryInterface(IUnknown) is b.QueryInterface(IUnknown) tells whether two pointers
    # reach one object
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _x, sx = await serve(b, flags=MSHLFLAGS.TABLESTRONG)
    _y, sy = await serve(b, flags=MSHLFLAGS.TABLESTRONG)

    async def use() -> tuple[bool, bool]:
        px, py = comsim.unmarshal_interface(sx), comsim.unmarshal_interface(sy)
        px2 = comsim.unmarshal_interface(sx)
        unk = comsim.IUnknown
        return (px.QueryInterface(unk) is px2.QueryInterface(unk),
                px.QueryInterface(unk) is py.QueryInterface(unk))

    assert await a.run(use) == (True, False)


@pytest.mark.asyncio
async def test_apartments_have_their_own_managers(rt: comsim.Runtime) -> None:
    # R34: one manager per object *per apartment*: proxies in two apartments differ
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    _obj, stream = await serve(b, flags=MSHLFLAGS.TABLESTRONG)

    async def get() -> Any:
        return comsim.unmarshal_interface(stream)

    pa, pc = await a.run(get), await c.run(get)
    assert pa is not pc
    assert pa is await a.run(get)


@pytest.mark.asyncio
async def test_references_in_arguments_and_results_join_the_manager(rt: comsim.Runtime) -> None:
    # R34, R11: an object reference arriving in an argument or a result gives the receiving
    # apartment's one manager's proxy, also when the same reference comes twice in one value
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    _h, s_holder = await serve(c, Holder, IHolder, flags=MSHLFLAGS.TABLESTRONG)
    _obj, s_calc = await serve(b, flags=MSHLFLAGS.TABLESTRONG)

    async def use() -> tuple[bool, bool, bool]:
        holder = comsim.unmarshal_interface(s_holder)
        calc = comsim.unmarshal_interface(s_calc)
        await holder.Hold(calc)
        back = await holder.Give()
        same_in_c = await holder.Same(calc, calc)
        return back is calc, same_in_c, back is comsim.unmarshal_interface(s_calc)

    assert await a.run(use) == (True, True, True)


@pytest.mark.asyncio
async def test_one_count_shared_by_every_route(rt: comsim.Runtime) -> None:
    # R34, R25: every route, QueryInterface and AddRef add one to the manager's one count;
    # Release takes one, whichever proxy it is called on
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _obj, stream = await serve(b, Both, ICalc, flags=MSHLFLAGS.TABLESTRONG)

    async def use() -> list[int]:
        p = comsim.unmarshal_interface(stream)  # 1
        comsim.unmarshal_interface(stream)  # 2
        other = p.QueryInterface(IOther)  # 3
        n = other.AddRef()  # 4
        return [n, p.Release(), other.Release(), p.AddRef()]

    assert await a.run(use) == [4, 3, 2, 3]


@pytest.mark.asyncio
async def test_released_manager_leaves_and_its_proxies_are_dead(rt: comsim.Runtime) -> None:
    # R34: at 0 the manager leaves the apartment; use of its proxies fails with
    # CO_E_OBJNOTCONNECTED, AddRef and Release give 0; the next route builds a new manager
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _obj, stream = await serve(b, Both, ICalc, flags=MSHLFLAGS.TABLESTRONG)

    async def use() -> dict[str, Any]:
        p = comsim.unmarshal_interface(stream)
        other = p.QueryInterface(IOther)
        other.Release()
        out: dict[str, Any] = {"last release": p.Release()}
        out["call"] = await ahr_of(p.Add, 1, 2)
        out["other call"] = await ahr_of(other.Ping)
        out["qi"] = hr_of(p.QueryInterface, IOther)
        out["marshal"] = hr_of(comsim.marshal_interface, p, ICalc)
        out["addref, release"] = (p.AddRef(), p.Release(), other.Release())
        fresh = comsim.unmarshal_interface(stream)
        out["fresh is new"] = fresh is not p
        out["fresh works"] = await fresh.Add(2, 3)
        out["old still dead"] = await ahr_of(p.Add, 1, 2)
        return out

    assert await a.run(use) == {
        "last release": 0,
        "call": hresult.CO_E_OBJNOTCONNECTED,
        "other call": hresult.CO_E_OBJNOTCONNECTED,
        "qi": hresult.CO_E_OBJNOTCONNECTED,
        "marshal": hresult.CO_E_OBJNOTCONNECTED,
        "addref, release": (0, 0, 0),
        "fresh is new": True,
        "fresh works": 5,
        "old still dead": hresult.CO_E_OBJNOTCONNECTED,
    }


@pytest.mark.asyncio
async def test_dead_proxy_from_no_apartment_is_notinitialized_first(rt: comsim.Runtime) -> None:
    # R34, R12: the no-apartment check still comes first; Release is always allowed
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _obj, stream = await serve(b)

    async def get() -> Any:
        p = comsim.unmarshal_interface(stream)
        p.Release()
        return p

    p = await a.run(get)
    assert await ahr_of(p.Add, 1, 2) == hresult.CO_E_NOTINITIALIZED
    assert p.Release() == 0


@pytest.mark.asyncio
async def test_disconnected_proxies_are_never_shared(rt: comsim.Runtime) -> None:
    # R34, R7: released normal data gives a disconnected proxy of its own each time, and
    # does not join (or disturb) the apartment's live manager
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def export() -> tuple[comsim.MarshalStream, comsim.MarshalStream]:
        obj = Calc()
        keep = comsim.marshal_interface(obj, ICalc, flags=MSHLFLAGS.TABLESTRONG)
        gone = comsim.marshal_interface(obj, ICalc)
        comsim.release_marshal_data(gone)
        return keep, gone

    keep, gone = await b.run(export)

    async def use() -> tuple[bool, bool, int, int]:
        live = comsim.unmarshal_interface(keep)
        d1, d2 = comsim.unmarshal_interface(gone), comsim.unmarshal_interface(gone)
        return (d1 is not d2, d1 is not live, await ahr_of(d1.Add, 1, 1),
                await live.Add(1, 1))

    assert await a.run(use) == (True, True, hresult.RPC_E_DISCONNECTED, 2)


@pytest.mark.asyncio
async def test_a_released_disconnected_proxy_is_dead(rt: comsim.Runtime) -> None:
    # R7, R34, R12: a disconnected proxy has its own count of 1; released, it is dead like any
    # proxy whose count reached 0: use fails at the proxy with CO_E_OBJNOTCONNECTED, before
    # anything is sent (so not RPC_E_DISCONNECTED); Release and AddRef give 0 (fuzz seed 6185)
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def export() -> comsim.MarshalStream:
        gone = comsim.marshal_interface(Calc(), ICalc)
        comsim.release_marshal_data(gone)
        return gone

    gone = await b.run(export)

    async def use() -> tuple[int, int, int, int, int]:
        d = comsim.unmarshal_interface(gone)
        before = await ahr_of(d.Add, 1, 1)
        released = d.Release()
        return before, released, await ahr_of(d.Add, 1, 1), d.Release(), d.AddRef()

    assert await a.run(use) == (hresult.RPC_E_DISCONNECTED, 0, hresult.CO_E_OBJNOTCONNECTED,
                                0, 0)


@pytest.mark.asyncio
async def test_git_at_home_and_elsewhere(rt: comsim.Runtime) -> None:
    # R34, R10: GetInterfaceFromGlobal is a route: the object itself at home, the manager's
    # proxy elsewhere, one count added each time
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def register() -> tuple[Any, int]:
        obj = Calc()
        return obj, rt.git.RegisterInterfaceInGlobal(obj, ICalc)

    obj, cookie = await b.run(register)

    async def home() -> bool:
        return rt.git.GetInterfaceFromGlobal(cookie, ICalc) is obj

    async def away() -> tuple[bool, int]:
        p = rt.git.GetInterfaceFromGlobal(cookie, ICalc)
        q = rt.git.GetInterfaceFromGlobal(cookie, comsim.IUnknown)
        return p is q, p.Release()

    assert await b.run(home) is True
    assert await a.run(away) == (True, 1)


class Pinger(comsim.CoClass, IPing):
    async def Ping(self) -> str:
        return "pong"


@pytest.mark.asyncio
async def test_proxy_used_in_wrong_apartment(rt: comsim.Runtime) -> None:
    """Wine: test_proxy_used_in_wrong_thread. Using the proxy elsewhere fails with
    RPC_E_WRONG_THREAD (calls and QueryInterface); releasing it there is allowed and, as the
    last release, lets the object go (no locks left)."""
    # R34 R12 R7
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    obj, stream = await serve(b, Pinger, IPing)
    p = await a.run(lambda: _unmarshal(stream))

    async def bad() -> tuple[int, int, int]:
        return await ahr_of(p.Ping), hr_of(p.QueryInterface, ICalc), p.Release()

    with comsim.testing.capture_trace() as events:
        assert await c.run(bad) == (hresult.RPC_E_WRONG_THREAD, hresult.RPC_E_WRONG_THREAD, 0)
    assert events.events("stub.disconnected", reason="released") != []
    # R1: the stub's reference goes in b, as a message from c (RemRelease): once b took it in
    await drain(rt, b)
    assert await b.run(_locks, obj) == 1  # only the creator's reference is left


async def _unmarshal(stream: comsim.MarshalStream) -> Any:
    return comsim.unmarshal_interface(stream)


async def _locks(obj: Any) -> int:
    """The object's reference count (Wine's cLocks, plus the creator's one)."""
    n = int(obj.AddRef())
    obj.Release()
    return n - 1
