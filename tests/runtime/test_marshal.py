"""Marshalling: marshal data, the Global Interface Table, arguments by value, proxy use.

Rules R6-R12 of COM-RULES.md (and R4 for the COM APIs that need an apartment).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import comsim
import comsim.testing
from comsim import MSHLFLAGS, hresult

from ..helpers import Calc, ICalc, IPing, hresult_of, serve


# --------------------------------------------------------------------------- interfaces
class IOther(comsim.Interface):
    async def Ping(self) -> str: ...


class IMissing(comsim.Interface):
    async def Nothing(self) -> None: ...


class Both(comsim.CoClass, ICalc, IOther):
    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Ping(self) -> str:
        apt = comsim.current_apartment()
        return apt.name if apt is not None else "<none>"


class IStore(comsim.Interface):
    async def Keep(self, value: Any) -> Any: ...
    async def Kept(self) -> Any: ...
    async def Echo(self, value: Any) -> Any: ...
    async def MakeLock(self) -> Any: ...
    async def Inspect(self, value: Any) -> Any: ...
    async def Give(self, value: Any) -> Any: ...


class Store(comsim.CoClass, IStore):
    def __init__(self) -> None:
        super().__init__()
        self.kept: Any = None
        self.calls: list[str] = []

    async def Keep(self, value: Any) -> Any:
        self.calls.append("Keep")
        value.append("server")  # mutates the server's copy only
        self.kept = value
        return value

    async def Kept(self) -> Any:
        return self.kept

    async def Echo(self, value: Any) -> Any:
        self.calls.append("Echo")
        return value

    async def MakeLock(self) -> Any:
        self.calls.append("MakeLock")
        return threading.Lock()

    async def Inspect(self, value: Any) -> Any:
        """What arrived: whether the nested object is a proxy bound here (callable from here),
        or this very object."""
        inner = value[0]["obj"]
        here = comsim.current_apartment()
        assert here is not None
        if inner is self:
            return ("self", here.name)
        return (isinstance(inner, comsim.Proxy), await inner.Ping(), here.name)

    async def Give(self, value: Any) -> Any:
        """A result holding objects at depth: this one, and whatever came in."""
        return {"list": [{"me": self, "back": value}]}


def hr_of(fn: Any, *args: Any) -> int:
    """The HRESULT ``fn(*args)`` fails with (S_OK if it does not)."""
    try:
        fn(*args)
    except comsim.COMError as exc:
        return exc.hresult
    return hresult.S_OK


async def ahr_of(coro_fn: Any, *args: Any) -> int:
    """The HRESULT awaiting ``coro_fn(*args)`` fails with (S_OK if it does not)."""
    return await hresult_of(coro_fn(*args))


# --------------------------------------------------------------------------- R4
@pytest.mark.asyncio
async def test_marshalling_needs_an_apartment(rt: comsim.Runtime) -> None:
    # R4: marshalling and unmarshalling from code in no apartment fail
    b = await rt.create_sta("b")
    obj, stream = await serve(b)
    assert hr_of(comsim.marshal_interface, obj, ICalc) == hresult.CO_E_NOTINITIALIZED
    assert hr_of(comsim.unmarshal_interface, stream) == hresult.CO_E_NOTINITIALIZED

    async def use() -> int:  # the failed attempt did not consume the data
        return await comsim.unmarshal_interface(stream).Add(1, 1)

    a = await rt.create_sta("a")
    assert await a.run(use) == 2


# --------------------------------------------------------------------------- R6
@pytest.mark.asyncio
async def test_normal_marshal_unmarshals_once(rt: comsim.Runtime) -> None:
    # R6: one unmarshal; the second fails, from any apartment
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    _obj, stream = await serve(b)

    async def use() -> tuple[int, int]:
        p = comsim.unmarshal_interface(stream)
        return await p.Add(2, 3), hr_of(comsim.unmarshal_interface, stream)

    assert await a.run(use) == (5, hresult.CO_E_OBJNOTCONNECTED)

    async def again() -> int:
        return hr_of(comsim.unmarshal_interface, stream)

    assert await c.run(again) == hresult.CO_E_OBJNOTCONNECTED
    assert await b.run(again) == hresult.CO_E_OBJNOTCONNECTED  # also at home

    # R7: releasing consumed normal data does nothing
    comsim.release_marshal_data(stream)
    assert await c.run(again) == hresult.CO_E_OBJNOTCONNECTED


@pytest.mark.asyncio
async def test_releasing_normal_marshal_data_frees_it(rt: comsim.Runtime) -> None:
    # R6, R7: released without unmarshalling, the data is gone: it unmarshals to a
    # disconnected proxy (calls: RPC_E_DISCONNECTED), at home to CO_E_OBJNOTCONNECTED
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _obj, stream = await serve(b)

    async def release() -> None:
        comsim.release_marshal_data(stream)

    await b.run(release)

    async def use() -> int:
        return await ahr_of(comsim.unmarshal_interface(stream).Add, 1, 1)

    async def at_home() -> int:
        return hr_of(comsim.unmarshal_interface, stream)

    assert await a.run(use) == hresult.RPC_E_DISCONNECTED
    assert await b.run(at_home) == hresult.CO_E_OBJNOTCONNECTED
    await b.run(release)  # twice: nothing happens
    assert await a.run(use) == hresult.RPC_E_DISCONNECTED


# --------------------------------------------------------------------------- R7
@pytest.mark.asyncio
async def test_table_strong_unmarshals_until_released(rt: comsim.Runtime) -> None:
    # R7: table-strong data, any number of times, in any apartment, until released
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    obj, stream = await serve(b, flags=MSHLFLAGS.TABLESTRONG)
    assert stream.flags is MSHLFLAGS.TABLESTRONG

    async def use(n: int) -> list[int]:
        return [await comsim.unmarshal_interface(stream).Add(i, 1) for i in range(n)]

    assert await a.run(use, 5) == [1, 2, 3, 4, 5]
    assert await c.run(use, 3) == [1, 2, 3]
    assert await rt.mta.run(use, 2) == [1, 2]

    async def at_home() -> Any:
        return comsim.unmarshal_interface(stream)

    assert await b.run(at_home) is obj  # R8

    async def release() -> None:
        comsim.release_marshal_data(stream)

    await c.run(release)  # from another apartment than the object's

    async def try_use() -> int:
        return hr_of(comsim.unmarshal_interface, stream)

    assert await a.run(try_use) == hresult.CO_E_OBJNOTCONNECTED
    assert await b.run(try_use) == hresult.CO_E_OBJNOTCONNECTED
    comsim.release_marshal_data(stream)  # twice, and from no apartment: nothing happens
    assert await a.run(try_use) == hresult.CO_E_OBJNOTCONNECTED


@pytest.mark.asyncio
async def test_table_weak_unmarshals_until_released_then_objnotreg(rt: comsim.Runtime) -> None:
    # R7: table-weak data, many times; once released CO_E_OBJNOTREG
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _obj, stream = await serve(b, flags=MSHLFLAGS.TABLEWEAK)
    assert stream.flags is MSHLFLAGS.TABLEWEAK

    async def use(n: int) -> list[int]:
        return [await comsim.unmarshal_interface(stream).Add(i, 10) for i in range(n)]

    assert await a.run(use, 4) == [10, 11, 12, 13]
    assert await rt.mta.run(use, 2) == [10, 11]

    comsim.release_marshal_data(stream)  # from code in no apartment

    async def try_use() -> int:
        return hr_of(comsim.unmarshal_interface, stream)

    assert await a.run(try_use) == hresult.CO_E_OBJNOTREG
    assert await b.run(try_use) == hresult.CO_E_OBJNOTREG

    async def release() -> None:
        comsim.release_marshal_data(stream)

    await a.run(release)  # twice: nothing happens
    assert await a.run(try_use) == hresult.CO_E_OBJNOTREG


# --------------------------------------------------------------------------- R8
@pytest.mark.asyncio
async def test_unmarshal_at_home_gives_the_object(rt: comsim.Runtime) -> None:
    # R8: in the object's own apartment, the object itself, not a proxy
    b = await rt.create_sta("b")

    async def roundtrip() -> tuple[Any, Any]:
        obj = Calc()
        back = comsim.unmarshal_interface(comsim.marshal_interface(obj, ICalc))
        return obj, back

    obj, back = await b.run(roundtrip)
    assert back is obj
    assert not isinstance(back, comsim.Proxy)

    mobj, mback = await rt.mta.run(roundtrip)  # in the MTA too
    assert mback is mobj


# --------------------------------------------------------------------------- R9
@pytest.mark.asyncio
async def test_marshal_for_missing_interface_fails_at_once(rt: comsim.Runtime) -> None:
    # R9: E_NOINTERFACE when marshalling, also table marshals and in the GIT
    b = await rt.create_sta("b")

    async def attempt() -> list[int]:
        obj = Calc()
        return [
            hr_of(comsim.marshal_interface, obj, IOther),
            hr_of(lambda: comsim.marshal_interface(obj, IOther, flags=MSHLFLAGS.TABLESTRONG)),
            hr_of(lambda: comsim.marshal_interface(obj, IOther, flags=MSHLFLAGS.TABLEWEAK)),
            hr_of(rt.git.RegisterInterfaceInGlobal, obj, IOther),
        ]

    assert await b.run(attempt) == [hresult.E_NOINTERFACE] * 4


@pytest.mark.asyncio
async def test_unmarshal_for_missing_interface_consumes_the_data(rt: comsim.Runtime) -> None:
    # R9: unmarshalling for an interface the object lacks fails and the data is consumed
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _obj, stream = await serve(b)

    async def use() -> tuple[int, int]:
        first = hr_of(comsim.unmarshal_interface, stream, IOther)
        return first, hr_of(comsim.unmarshal_interface, stream)

    assert await a.run(use) == (hresult.E_NOINTERFACE, hresult.CO_E_OBJNOTCONNECTED)

    # at home as well
    _obj2, stream2 = await serve(b)
    assert await b.run(lambda: _consume_twice(stream2)) == (
        hresult.E_NOINTERFACE, hresult.CO_E_OBJNOTCONNECTED)

    # and unmarshalling for another interface it does implement is a QueryInterface
    _both, stream3 = await serve(b, Both)

    async def other() -> str:
        return await comsim.unmarshal_interface(stream3, IOther).Ping()

    assert await a.run(other) == "b"


async def _consume_twice(stream: comsim.MarshalStream) -> tuple[int, int]:
    return (hr_of(comsim.unmarshal_interface, stream, IOther),
            hr_of(comsim.unmarshal_interface, stream))


@pytest.mark.asyncio
async def test_query_interface_on_proxy(rt: comsim.Runtime) -> None:
    # R9, R25: QI through a proxy; missing -> E_NOINTERFACE; one shared reference count
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _calc, s_calc = await serve(b)
    _both, s_both = await serve(b, Both)

    async def use() -> dict[str, Any]:
        out: dict[str, Any] = {}
        p = comsim.unmarshal_interface(s_calc)
        out["missing"] = hr_of(p.QueryInterface, IOther)
        out["missing2"] = hr_of(p.QueryInterface, IMissing)
        q = comsim.unmarshal_interface(s_both)
        other: Any = q.QueryInterface(IOther)
        out["other is proxy"] = isinstance(other, comsim.Proxy)
        out["ping"] = await other.Ping()
        out["add via unknown"] = await q.QueryInterface(comsim.IUnknown).QueryInterface(
            ICalc).Add(1, 2)
        n = q.AddRef()
        out["counts"] = [other.AddRef() - n, q.Release() - n, other.Release() - n]
        return out

    out = await a.run(use)
    assert out["missing"] == hresult.E_NOINTERFACE
    assert out["missing2"] == hresult.E_NOINTERFACE
    assert out["other is proxy"] is True
    assert out["ping"] == "b"
    assert out["add via unknown"] == 3
    assert out["counts"] == [1, 0, -1]  # the proxies share one count


@pytest.mark.asyncio
async def test_query_interface_on_the_object_itself(rt: comsim.Runtime) -> None:
    # R9, R25: at home, QI gives the object itself or E_NOINTERFACE
    b = await rt.create_sta("b")

    async def use() -> tuple[bool, int, list[int]]:
        obj = Both()
        other = obj.QueryInterface(IOther)
        missing = hr_of(obj.QueryInterface, IMissing)
        n = obj.AddRef()
        return other is obj, missing, [other.AddRef() - n, obj.Release() - n]

    assert await b.run(use) == (True, hresult.E_NOINTERFACE, [1, 0])


# --------------------------------------------------------------------------- R10
@pytest.mark.asyncio
async def test_global_interface_table(rt: comsim.Runtime) -> None:
    # R10: register once; any apartment gets it any number of times; revoke from anywhere
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    git = rt.git

    async def register() -> tuple[Any, int]:
        obj = Both()
        return obj, git.RegisterInterfaceInGlobal(obj, ICalc)

    obj, cookie = await b.run(register)

    async def get_many(n: int) -> list[tuple[bool, int]]:
        out = []
        for i in range(n):
            p = git.GetInterfaceFromGlobal(cookie, ICalc)
            out.append((isinstance(p, comsim.Proxy), await p.Add(i, i)))
        return out

    assert await a.run(get_many, 3) == [(True, 0), (True, 2), (True, 4)]
    assert await c.run(get_many, 2) == [(True, 0), (True, 2)]
    assert await rt.mta.run(get_many, 2) == [(True, 0), (True, 2)]

    async def at_home() -> list[Any]:
        return [git.GetInterfaceFromGlobal(cookie, ICalc) for _ in range(2)]

    assert await b.run(at_home) == [obj, obj]
    assert all(x is obj for x in await b.run(at_home))

    async def other_iface() -> str:  # a get for another interface is a QueryInterface
        return await git.GetInterfaceFromGlobal(cookie, IOther).Ping()

    assert await a.run(other_iface) == "b"

    async def revoke() -> None:
        git.RevokeInterfaceFromGlobal(cookie)

    await c.run(revoke)  # not the registering apartment

    async def after() -> tuple[int, int]:
        return (hr_of(git.GetInterfaceFromGlobal, cookie, ICalc),
                hr_of(git.RevokeInterfaceFromGlobal, cookie))

    assert await a.run(after) == (hresult.E_INVALIDARG, hresult.E_INVALIDARG)
    assert await b.run(after) == (hresult.E_INVALIDARG, hresult.E_INVALIDARG)


@pytest.mark.asyncio
async def test_git_get_for_missing_interface(rt: comsim.Runtime) -> None:
    # R10: a get for an interface the object lacks is E_NOINTERFACE; the entry stays
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def register() -> int:
        return rt.git.RegisterInterfaceInGlobal(Calc(), ICalc)

    cookie = await b.run(register)

    async def get() -> tuple[int, int, int]:
        return (hr_of(rt.git.GetInterfaceFromGlobal, cookie, IOther),
                await rt.git.GetInterfaceFromGlobal(cookie, ICalc).Add(3, 4),
                hr_of(rt.git.GetInterfaceFromGlobal, cookie, IOther))

    assert await a.run(get) == (hresult.E_NOINTERFACE, 7, hresult.E_NOINTERFACE)
    assert (await b.run(get))[0] == hresult.E_NOINTERFACE  # at home too


@pytest.mark.asyncio
async def test_git_from_no_apartment(rt: comsim.Runtime) -> None:
    # R10, R4: every GIT call from code in no apartment fails with CO_E_NOTINITIALIZED
    b = await rt.create_sta("b")
    a = await rt.create_sta("a")

    async def register() -> tuple[Any, int]:
        obj = Calc()
        return obj, rt.git.RegisterInterfaceInGlobal(obj, ICalc)

    obj, cookie = await b.run(register)
    git = rt.git
    assert hr_of(git.RegisterInterfaceInGlobal, obj, ICalc) == hresult.CO_E_NOTINITIALIZED
    assert hr_of(git.GetInterfaceFromGlobal, cookie, ICalc) == hresult.CO_E_NOTINITIALIZED
    assert hr_of(git.RevokeInterfaceFromGlobal, cookie) == hresult.CO_E_NOTINITIALIZED
    # ... also with a cookie that was never registered (the apartment check comes first)
    assert hr_of(git.GetInterfaceFromGlobal, 987654, ICalc) == hresult.CO_E_NOTINITIALIZED
    assert hr_of(git.RevokeInterfaceFromGlobal, 987654) == hresult.CO_E_NOTINITIALIZED

    async def get() -> int:  # the failed revoke revoked nothing
        return await git.GetInterfaceFromGlobal(cookie, ICalc).Add(1, 1)

    assert await a.run(get) == 2


# --------------------------------------------------------------------------- R11
async def _store_in(apt: comsim.Apartment) -> tuple[Store, comsim.MarshalStream]:
    return await serve(apt, Store, IStore, flags=MSHLFLAGS.TABLESTRONG)


@pytest.mark.asyncio
async def test_arguments_and_results_are_copies(rt: comsim.Runtime) -> None:
    # R11: a mutation on one side is never seen on the other
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    store, stream = await _store_in(b)

    async def use() -> dict[str, Any]:
        p = comsim.unmarshal_interface(stream)
        mine = ["client"]
        result = await p.Keep(mine)
        out = {"mine": list(mine), "result": list(result), "same": result is mine}
        result.append("client mutates the result")
        mine.append("client mutates the argument")
        out["kept"] = await p.Kept()
        nested = {"k": [1, [2, 3]]}
        echoed = await p.Echo(nested)
        out["echo equal"] = echoed == nested
        out["echo same"] = echoed is nested or echoed["k"] is nested["k"]
        return out

    out = await a.run(use)
    assert out["mine"] == ["client"]  # the server's append is not seen by the caller
    assert out["result"] == ["client", "server"]
    assert out["same"] is False
    assert out["kept"] == ["client", "server"]  # the caller's later mutations are not seen
    assert store.kept == ["client", "server"]
    assert out["echo equal"] is True
    assert out["echo same"] is False


class Pinger(comsim.CoClass, IPing):
    async def Ping(self) -> str:
        apt = comsim.current_apartment()
        return apt.name if apt is not None else "<none>"


@pytest.mark.asyncio
async def test_objects_at_depth_become_proxies_or_come_home(rt: comsim.Runtime) -> None:
    # R11: CoClass instances and proxies inside arguments/results, at any depth, arrive as
    # proxies bound to the receiving apartment, or as the object itself at home (R8)
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    store, stream = await _store_in(b)

    async def use() -> dict[str, Any]:
        out: dict[str, Any] = {}
        p = comsim.unmarshal_interface(stream)
        pinger = Pinger()  # lives in A
        # an A object inside a dict inside a list: in B a proxy bound to B (B can call it)
        out["inspect"] = await p.Inspect([{"obj": pinger, "n": 1}])
        # a proxy to the B object, nested, arrives home in B as the object itself
        out["home"] = await p.Inspect([{"obj": p}])
        # results: B's object arrives in A as a proxy bound to A; A's own object comes back
        # as itself
        given = await p.Give([{"deep": pinger}])
        me = given["list"][0]["me"]
        back = given["list"][0]["back"][0]["deep"]
        out["me is proxy"] = isinstance(me, comsim.Proxy)
        out["me works here"] = await me.Kept()
        out["back is pinger"] = back is pinger
        return out

    await b.run(_keep_something, store)
    out = await a.run(use)
    assert out["inspect"] == (True, "a", "b")
    assert out["home"] == ("self", "b")
    assert out["me is proxy"] is True
    assert out["me works here"] == ["x"]
    assert out["back is pinger"] is True


async def _keep_something(store: Store) -> None:
    store.kept = ["x"]


@pytest.mark.asyncio
async def test_objects_in_args_to_a_third_apartment(rt: comsim.Runtime) -> None:
    # R11: a proxy passed on from A to C arrives in C as a proxy bound to C
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    _both, s_both = await serve(b, Both, flags=MSHLFLAGS.TABLESTRONG)
    _store, s_store = await _store_in(c)

    async def use() -> Any:
        to_b = comsim.unmarshal_interface(s_both, IOther)
        to_c = comsim.unmarshal_interface(s_store)
        return await to_c.Inspect([{"obj": to_b}])

    assert await a.run(use) == (True, "b", "c")


@pytest.mark.asyncio
async def test_unpicklable_argument_fails_before_sending(rt: comsim.Runtime) -> None:
    # R11: a value pickle refuses fails on the caller's side; the server never runs
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    store, stream = await _store_in(b)

    class Local:  # instances of local classes cannot be pickled
        pass

    bad_values = [threading.Lock(), lambda: 1, Local(), [{"deep": threading.Lock()}]]

    async def use() -> list[int]:
        p = comsim.unmarshal_interface(stream)
        return [await ahr_of(p.Echo, v) for v in bad_values]

    with comsim.testing.capture_trace() as events:
        codes = await a.run(use)
    assert codes == [hresult.RPC_X_BAD_STUB_DATA] * len(bad_values)
    assert store.calls == []
    assert events.events("call.sent") == []
    assert events.events("call.dispatched") == []


@pytest.mark.asyncio
async def test_unpicklable_result_fails_after_the_work(rt: comsim.Runtime) -> None:
    # R11: a result pickle refuses fails the call with RPC_X_BAD_STUB_DATA; the work is done
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    store, stream = await _store_in(b)

    async def use() -> tuple[int, int]:
        p = comsim.unmarshal_interface(stream)
        return await ahr_of(p.MakeLock), await p.Echo(5)

    assert await a.run(use) == (hresult.RPC_X_BAD_STUB_DATA, 5)
    assert store.calls == ["MakeLock", "Echo"]


@pytest.mark.asyncio
async def test_arguments_that_do_not_bind_fail_before_sending(rt: comsim.Runtime) -> None:
    # R11: wrong count or unknown keyword -> E_INVALIDARG, nothing sent; an undeclared
    # method -> E_INVALIDARG
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _both, stream = await serve(b, Both, flags=MSHLFLAGS.TABLESTRONG)

    async def use() -> dict[str, Any]:
        p = comsim.unmarshal_interface(stream)  # as ICalc
        out: dict[str, Any] = {}
        out["too few"] = await ahr_of(p.Add, 1)
        out["too many"] = await ahr_of(lambda: p.Add(1, 2, 3))
        out["unknown keyword"] = await ahr_of(lambda: p.Add(1, 2, c=3))
        out["duplicate"] = await ahr_of(lambda: p.Add(1, a=2))
        try:  # ICalc does not declare Ping, although the object implements IOther
            await p.Ping()
            out["undeclared"] = hresult.S_OK
        except comsim.COMError as exc:
            out["undeclared"] = exc.hresult
        out["keywords bind"] = await p.Add(b=2, a=40)
        return out

    with comsim.testing.capture_trace() as events:
        out = await a.run(use)
    assert out == {
        "too few": hresult.E_INVALIDARG,
        "too many": hresult.E_INVALIDARG,
        "unknown keyword": hresult.E_INVALIDARG,
        "duplicate": hresult.E_INVALIDARG,
        "undeclared": hresult.E_INVALIDARG,
        "keywords bind": 42,
    }
    # only the last, well-formed call was sent
    assert [e["method"] for e in events.events("call.sent")] == ["Add"]


@pytest.mark.asyncio
async def test_apartment_run_passes_by_reference(rt: comsim.Runtime) -> None:
    # R11: Apartment.run is not a COM call: arguments and result by reference
    b = await rt.create_sta("b")
    arg: list[Any] = ["caller"]

    async def fn(value: list[Any]) -> list[Any]:
        value.append("unit")
        value.append(Calc())  # even CoClass instances stay as they are
        return value

    result = await b.run(fn, arg)
    assert result is arg
    assert arg[:2] == ["caller", "unit"]
    assert isinstance(arg[2], Calc) and not isinstance(arg[2], comsim.Proxy)


# --------------------------------------------------------------------------- R12
@pytest.mark.asyncio
async def test_proxy_use_checks_in_order(rt: comsim.Runtime) -> None:
    # R12: no apartment -> CO_E_NOTINITIALIZED; wrong apartment -> RPC_E_WRONG_THREAD;
    # the proxy's apartment shut down -> CO_E_OBJNOTCONNECTED (before the wrong-thread check);
    # Release always allowed
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    _obj, stream = await serve(b, Both, flags=MSHLFLAGS.TABLESTRONG)

    async def get() -> Any:
        return comsim.unmarshal_interface(stream)

    p = await a.run(get)  # a proxy bound to A, handed out by reference

    # from no apartment
    assert await ahr_of(p.Add, 1, 2) == hresult.CO_E_NOTINITIALIZED
    assert hr_of(p.QueryInterface, IOther) == hresult.CO_E_NOTINITIALIZED

    # from another apartment
    async def elsewhere() -> tuple[int, int]:
        return await ahr_of(p.Add, 1, 2), hr_of(p.QueryInterface, IOther)

    assert await c.run(elsewhere) == (hresult.RPC_E_WRONG_THREAD, hresult.RPC_E_WRONG_THREAD)
    assert await b.run(elsewhere) == (hresult.RPC_E_WRONG_THREAD,
                                      hresult.RPC_E_WRONG_THREAD)  # even the object's home

    async def home() -> int:
        return await p.Add(1, 2)

    assert await a.run(home) == 3  # where it was unmarshalled it works

    async def add_ref() -> int:
        return p.AddRef()

    await a.run(add_ref)
    assert isinstance(p.Release(), int)  # Release from no apartment: allowed

    await a.shutdown()
    # no apartment still comes first
    assert await ahr_of(p.Add, 1, 2) == hresult.CO_E_NOTINITIALIZED
    # then the dead apartment, before the wrong-thread check
    assert await c.run(elsewhere) == (hresult.CO_E_OBJNOTCONNECTED,
                                      hresult.CO_E_OBJNOTCONNECTED)
    assert isinstance(p.Release(), int)  # Release is always allowed

    async def release_elsewhere() -> int:
        return p.Release()

    assert isinstance(await c.run(release_elsewhere), int)


@pytest.mark.asyncio
async def test_release_on_live_proxy_from_other_apartment(rt: comsim.Runtime) -> None:
    # R12: Release is allowed from any apartment; using the proxy there is not
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    _obj, stream = await serve(b)

    async def get() -> tuple[Any, int]:
        p = comsim.unmarshal_interface(stream)
        return p, p.AddRef()

    p, n = await a.run(get)

    async def release() -> tuple[int, int]:
        return p.Release(), await ahr_of(p.Add, 1, 1)

    assert await c.run(release) == (n - 1, hresult.RPC_E_WRONG_THREAD)


@pytest.mark.asyncio
@pytest.mark.parametrize("flags", [1.0, True, 7, "1", None])
async def test_marshal_flags_are_mshlflags_or_their_ints(rt: comsim.Runtime, flags: Any) -> None:
    # R6, R7: before, 1.0 was taken as TABLESTRONG
    sta = await rt.create_sta("a")

    async def marshal() -> tuple[int, int]:
        obj = Calc()
        plain = comsim.marshal_interface(obj, ICalc, flags=1)  # a plain int is a flag
        comsim.release_marshal_data(plain)
        try:
            comsim.marshal_interface(obj, ICalc, flags=flags)
        except comsim.COMError as exc:
            return plain.flags, exc.hresult
        return plain.flags, hresult.S_OK

    assert await sta.run(marshal) == (MSHLFLAGS.TABLESTRONG, hresult.E_INVALIDARG)


@pytest.mark.asyncio
async def test_a_disconnected_proxy_does_not_marshal(rt: comsim.Runtime) -> None:
    # R17, R7: a proxy whose object was disconnected is refused at once with
    # RPC_E_DISCONNECTED, as when it is passed in a value; before, marshalling it (any flags,
    # or the GIT) gave data that failed to unmarshal later with CO_E_OBJNOTREG
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")
    obj, stream = await serve(srv)
    proxy = await cli.run(lambda: _unmarshal(stream))

    async def disconnect() -> None:
        comsim.CoDisconnectObject(obj)

    await srv.run(disconnect)

    async def misuse() -> list[int]:
        codes = []
        for attempt in [*(lambda f=f: comsim.marshal_interface(proxy, ICalc, flags=f)
                          for f in MSHLFLAGS),
                        lambda: rt.git.RegisterInterfaceInGlobal(proxy, ICalc)]:
            try:
                attempt()
                codes.append(hresult.S_OK)
            except comsim.COMError as exc:
                codes.append(exc.hresult)
        return codes

    assert await cli.run(misuse) == [hresult.RPC_E_DISCONNECTED] * 4


async def _unmarshal(stream: comsim.MarshalStream) -> Any:
    return comsim.unmarshal_interface(stream)
