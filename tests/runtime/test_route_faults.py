"""Routes in (R34) where they meet a release on another thread, ICallFactory and a proxy used
from the wrong apartment: each route is one step against a revoke or a release (R7, R10),
gives the same ICallFactory as QueryInterface (R19, R26), and passing a proxy in an argument
is using it (R11, R12).

The races are forced, not waited for: ``_Between`` runs the other thread's step (a revoke, a
release) synchronously just before each lock acquisition of the route in turn, as a thread
switch there would, on both runtimes alike.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import comsim
from comsim import MSHLFLAGS, hresult
from comsim._runtime import lifetime, objref, proxy, stubs

from ..helpers import AsyncISum, Calc, ICalc, ISum, drain, serve
from .test_marshal import ahr_of, hr_of


async def _locks(obj: Any) -> int:
    """The references on ``obj`` besides its creator's: 1 while a stub holds it, 0 after."""
    n = int(obj.AddRef())
    obj.Release()
    return n - 2


# --------------------------------------------------------------------------- R7, R10, R34
class _Watch:
    """A lock that tells ``between`` before each acquisition."""

    def __init__(self, lock: Any, between: _Between) -> None:
        self.lock = lock
        self.between = between

    def __enter__(self) -> bool:
        self.between.before_acquire()
        self.lock.acquire()
        return True

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.between.before_acquire()
        return bool(self.lock.acquire(blocking, timeout))

    def release(self) -> None:
        self.lock.release()

    def locked(self) -> bool:
        return bool(self.lock.locked())


class _Between:
    """A thread switch, made deterministic: the stub lock and the GIT's lock are wrapped so
    that, while ``armed(at, step)``, ``step()`` (what another thread does) runs once on the
    armed thread just before that thread's ``at``-th acquisition of either (0: before the
    first). A route whose check and taking of its reference were two holds of a lock, or
    a check without it, would let the step in between: every ``at`` in turn tries each gap."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, rt: comsim.Runtime) -> None:
        self.at = -1
        self.seen = 0
        self.fired = False
        self.thread: int | None = None
        self.step: Callable[[], Any] = lambda: None
        stub_lock = _Watch(stubs._stub_lock, self)
        for module in (stubs, lifetime, proxy, objref):  # each has its own name for it
            monkeypatch.setattr(module, "_stub_lock", stub_lock)
        monkeypatch.setattr(rt.git, "_lock", _Watch(rt.git._lock, self))

    def before_acquire(self) -> None:
        if self.fired or self.thread != threading.get_ident():
            return
        if self.seen == self.at:
            self.fired = True  # the step's own acquisitions are not counted
            self.step()
        self.seen += 1

    @contextmanager
    def armed(self, at: int, step: Callable[[], Any]) -> Iterator[None]:
        self.at, self.step, self.seen, self.fired = at, step, 0, False
        self.thread = threading.get_ident()
        try:
            yield
        finally:
            self.thread = None


async def _use(p: Any) -> int:
    """``p.Add(1, 2)`` and one Release: 3, or what the call fails with."""
    try:
        return int(await p.Add(1, 2))
    except comsim.COMError as exc:
        return exc.hresult
    finally:
        p.Release()


async def _race(between: _Between, at: int, get: Callable[[], Any],
                other: Callable[[], Any]) -> tuple[int, bool]:
    """``get()`` with ``other()`` let in before its ``at``-th lock acquisition, or after it
    if it has fewer: what the got pointer's call gives (or the get's failure), and whether
    ``other`` came in during the get."""
    with between.armed(at, other):
        try:
            p = get()
        except comsim.COMError as exc:
            p, code = None, exc.hresult
        during = between.fired
    if not during:
        other()  # wholly after the get
    return (code if p is None else await _use(p)), during


async def _outcomes(rt: comsim.Runtime, srv: comsim.Apartment, g: comsim.Apartment,
                    between: _Between, make: Callable[[], Any], get: Callable[[Any], Any],
                    other: Callable[[Any], Any]) -> list[int]:
    """The outcome of the race for every gap in turn, the last one after the whole get; each
    time the object is released at the end (R7: a got pointer held a reference of its own,
    and a failed get took none), once ``srv`` has taken in the release that ``g`` sent it
    (R1: the object's Release runs in its own apartment)."""
    outcomes: list[int] = []
    at = 0
    while True:
        obj, handle = await srv.run(make)
        outcome, during = await g.run(_race, between, at, functools.partial(get, handle),
                                      functools.partial(other, handle))
        outcomes.append(outcome)
        await drain(rt, srv)
        assert await srv.run(_locks, obj) == 0, (at, outcome)
        if not during:
            return outcomes
        at += 1


@pytest.mark.asyncio
async def test_git_get_is_one_step_against_a_revoke_forced_at_each_lock_acquisition(
        rt: comsim.Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # R10 R7 R34: a revoke that comes between the get's check and its reference (forced at
    # every lock acquisition of the get, as a thread switch) makes the get fail as after a
    # revoke, never give a proxy to the gone object (RPC_E_DISCONNECTED)
    srv = await rt.create_sta("srv")
    g = await rt.create_sta("g")
    between = _Between(monkeypatch, rt)

    async def register() -> tuple[Any, int]:
        obj = Calc()
        return obj, rt.git.RegisterInterfaceInGlobal(obj, ICalc)

    outcomes = await _outcomes(rt, srv, g, between, register,
                               lambda cookie: rt.git.GetInterfaceFromGlobal(cookie, ICalc),
                               rt.git.RevokeInterfaceFromGlobal)
    assert outcomes[0] == hresult.E_INVALIDARG  # wholly before the get
    assert outcomes[-1] == 3  # wholly after it: the proxy holds the object
    assert set(outcomes) <= {3, hresult.E_INVALIDARG}, [hresult.name(o) for o in outcomes]


@pytest.mark.asyncio
@pytest.mark.parametrize(("flags", "released"), [
    (MSHLFLAGS.TABLESTRONG, hresult.CO_E_OBJNOTCONNECTED),
    (MSHLFLAGS.TABLEWEAK, hresult.CO_E_OBJNOTREG),
], ids=["tablestrong", "tableweak"])
async def test_table_unmarshal_is_one_step_against_a_release_forced_at_each_lock_acquisition(
        rt: comsim.Runtime, monkeypatch: pytest.MonkeyPatch, flags: MSHLFLAGS,
        released: int) -> None:
    # R7 R34: release_marshal_data between the unmarshal's check and its reference (forced
    # at every lock acquisition) makes it fail as released data does, never give a proxy to
    # the gone object
    srv = await rt.create_sta("srv")
    g = await rt.create_sta("g")
    between = _Between(monkeypatch, rt)

    async def make() -> tuple[Any, comsim.MarshalStream]:
        obj = Calc()
        return obj, comsim.marshal_interface(obj, ICalc, flags=flags)

    outcomes = await _outcomes(rt, srv, g, between, make, comsim.unmarshal_interface,
                               comsim.release_marshal_data)
    assert outcomes[0] == released
    assert outcomes[-1] == 3
    assert set(outcomes) <= {3, released}, [hresult.name(o) for o in outcomes]


# --------------------------------------------------------------------------- R19, R26, R34
class SumCall(comsim.ServerCall, AsyncISum):
    def __init__(self, outer: Any, log: list[Any]) -> None:
        super().__init__(outer)
        self.log = log
        self.result = 0

    def Begin_Add(self, a: int, b: int) -> int:
        self.log.append(("begin", a, b))
        self.result = a + b
        self.outer.Signal()
        return hresult.S_OK

    def Finish_Add(self) -> int:
        return self.result


class Summer(comsim.CoClass, ISum, comsim.ICallFactory):
    """Makes its own server call objects (R26), and gives itself back in a result."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Any] = []

    def CreateCall(self, async_iface: Any, outer: Any = None) -> Any:
        if async_iface is not AsyncISum:  # R26: called synchronously
            raise comsim.COMError(hresult.E_NOINTERFACE, "only ISum is asynchronous")
        self.log.append("CreateCall")
        return SumCall(outer, self.log)

    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Me(self) -> Any:
        return self


class ISummer(comsim.Interface):
    async def Me(self) -> Any: ...


class SelfSummer(Summer, ISummer):
    pass


async def _sum_via(factory: Any) -> int:
    """An asynchronous Add through ``factory``'s call object, made at once (R19, R20)."""
    call = factory.CreateCall(AsyncISum)
    assert call.Begin_Add(1, 2) == hresult.S_OK
    return int(await call.Finish_Add())


@pytest.mark.asyncio
async def test_every_route_gives_the_proxys_own_call_factory(rt: comsim.Runtime) -> None:
    # R19 R26 R34: an object that implements ICallFactory, brought in as ICallFactory by
    # unmarshalling (data marshalled for it, or for ISum and asked for it), by the GIT, or
    # received in a result, gives the proxy manager's one ICallFactory proxy -- what
    # QueryInterface gives -- whose CreateCall makes a call object at once; the server's own
    # CreateCall is its stub's to call (once per call)
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")

    async def export() -> tuple[Any, list[comsim.MarshalStream], int]:
        obj = SelfSummer()
        return obj, [comsim.marshal_interface(obj, comsim.ICallFactory),
                     comsim.marshal_interface(obj, ISum, flags=MSHLFLAGS.TABLESTRONG)], \
            rt.git.RegisterInterfaceInGlobal(obj, ISum)

    obj, (as_factory, as_sum), cookie = await srv.run(export)

    async def use() -> tuple[list[bool], bool, list[int]]:
        p = rt.git.GetInterfaceFromGlobal(cookie, ISum)
        via_qi = p.QueryInterface(comsim.ICallFactory)
        routes = [comsim.unmarshal_interface(as_factory),
                  comsim.unmarshal_interface(as_sum, comsim.ICallFactory),
                  rt.git.GetInterfaceFromGlobal(cookie, comsim.ICallFactory)]
        received = await p.QueryInterface(ISummer).Me()  # the all-interfaces proxy (R11)
        return ([r is via_qi for r in routes],
                isinstance(via_qi, comsim.Proxy) and isinstance(via_qi, comsim.ICallFactory),
                [await _sum_via(f) for f in (via_qi, *routes, received)])

    same, is_proxy, sums = await cli.run(use)
    assert same == [True, True, True]
    assert is_proxy
    assert sums == [3] * 5
    assert obj.log == ["CreateCall", ("begin", 1, 2)] * 5  # R26: by the stub, per call


@pytest.mark.asyncio
async def test_icallfactory_by_a_route_is_a_query_interface(rt: comsim.Runtime) -> None:
    # R10 R19: a get for ICallFactory is a QueryInterface: on a proxy it is always there, even
    # for an object that does not implement it; at home only if the object does
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")

    async def register() -> int:
        return rt.git.RegisterInterfaceInGlobal(Calc(), ICalc)

    cookie = await srv.run(register)

    async def away() -> tuple[bool, int]:
        factory = rt.git.GetInterfaceFromGlobal(cookie, comsim.ICallFactory)
        p = rt.git.GetInterfaceFromGlobal(cookie, ICalc)
        call = factory.CreateCall(comsim.async_interface(ICalc))
        call.Begin_Add(2, 2)
        return factory is p.QueryInterface(comsim.ICallFactory), await call.Finish_Add()

    async def at_home() -> int:
        return hr_of(rt.git.GetInterfaceFromGlobal, cookie, comsim.ICallFactory)

    assert await cli.run(away) == (True, 4)
    assert await srv.run(at_home) == hresult.E_NOINTERFACE


# --------------------------------------------------------------------------- R11, R12
class IKeep(comsim.Interface):
    async def Keep(self, value: Any) -> str: ...


class Keeper(comsim.CoClass, IKeep):
    def __init__(self) -> None:
        super().__init__()
        self.kept: list[Any] = []

    async def Keep(self, value: Any) -> str:
        self.kept.append(value)
        return "kept"


@pytest.mark.asyncio
async def test_a_proxy_in_an_argument_is_checked_as_a_use(rt: comsim.Runtime) -> None:
    # R12 R11: passing a proxy in an argument is using it: from an apartment it is not bound
    # to, RPC_E_WRONG_THREAD, as marshal_interface gives there, with nothing sent; once its
    # own apartment has shut down, CO_E_OBJNOTCONNECTED first (R12's order, R18)
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    k = await rt.create_sta("k")
    _obj, item = await serve(b, flags=MSHLFLAGS.TABLESTRONG)
    keeper, keeper_data = await serve(k, Keeper, IKeep, flags=MSHLFLAGS.TABLESTRONG)

    async def get() -> Any:
        return comsim.unmarshal_interface(item)

    p = await a.run(get)  # bound to 'a', handed to 'c' by reference (Apartment.run)

    async def in_c() -> tuple[int, int]:
        q = comsim.unmarshal_interface(keeper_data)
        return (hr_of(comsim.marshal_interface, p, ICalc),
                await ahr_of(q.Keep, {"deep": [p]}))

    assert await c.run(in_c) == (hresult.RPC_E_WRONG_THREAD, hresult.RPC_E_WRONG_THREAD)
    assert keeper.kept == []  # nothing was sent

    async def in_a() -> str:  # where it is bound, the same call passes it
        return str(await comsim.unmarshal_interface(keeper_data).Keep([p]))

    assert await a.run(in_a) == "kept"
    await a.shutdown()
    assert await c.run(in_c) == (hresult.CO_E_OBJNOTCONNECTED, hresult.CO_E_OBJNOTCONNECTED)
    assert len(keeper.kept) == 1
