"""Exhaustive exploration where shared state is used without a lock (``_dpor_watch``).

Each scenario races a use of state that one apartment reads, or changes, without taking any of
the runtime's locks against a change of it made in another apartment: a stub's connection
(R17), a proxy manager's count (R12, R34), a call object's count (R25), a thread's pending
calls (R31), an apartment's shutdown (R18). The outcome says which came first. Optimal DPOR
must take such deliveries as dependent, or it runs only one of their orders and misses an
outcome: every outcome the random pump reaches, exhaustive exploration reaches too (and the
whole set, run unreduced once, is pinned here).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr
from comsim._runtime.callobj import CallObject
from comsim._runtime.stubs import Stub
from comsim.testing import explore
from comsim.testing._dpor_watch import CONN, CONN_READ, conflict, watching
from comsim.testing._exhaustive import exhaustive

from .scenarios import ILog, Log

AsyncILog = comsim.async_interface(ILog)


def _failed(exc: Exception) -> str:
    if isinstance(exc, comsim.COMError):
        return hr.name(exc.hresult)
    raise exc


async def _together(*units: tuple[comsim.Apartment, Callable[[], Awaitable[Any]]]
                    ) -> tuple[Any, ...]:
    """Run each ``(apartment, fn)`` as a unit of its apartment, all at once."""
    results: list[Any] = [None] * len(units)

    async def one(i: int, apt: comsim.Apartment, fn: Callable[[], Awaitable[Any]]) -> None:
        results[i] = await apt.run(fn)

    async with anyio.create_task_group() as tg:
        for i, (apt, fn) in enumerate(units):
            tg.start_soon(one, i, apt, fn)
    return tuple(results)


async def _served(rt: comsim.Runtime, *names: str) -> tuple[list[comsim.Apartment], Log,
                                                           comsim.MarshalStream]:
    """STAs ``srv`` and ``names``; a Log made in ``srv``, marshalled TABLESTRONG."""
    apts = [await rt.create_sta(n) for n in ("srv", *names)]
    made: list[Any] = []

    async def make() -> comsim.MarshalStream:
        made.append(Log())
        return comsim.marshal_interface(made[0], ILog, flags=comsim.MSHLFLAGS.TABLESTRONG)

    stream = await apts[0].run(make)
    return apts, made[0], stream


async def _proxy_in(apt: comsim.Apartment, stream: comsim.MarshalStream) -> Any:
    async def get() -> Any:
        return comsim.unmarshal_interface(stream, ILog)

    return await apt.run(get)


async def disconnect_races_call(rt: comsim.Runtime) -> Any:
    """cli calls through its proxy while srv disconnects the object (R17): the call runs, or
    is refused by cli's check of the stub's connection (nothing sent), or by srv's."""
    (srv, cli), obj, stream = await _served(rt, "cli")
    proxy = await _proxy_in(cli, stream)

    async def disconnect() -> None:
        comsim.CoDisconnectObject(obj)

    async def call() -> Any:
        try:
            return await proxy.Log("x")
        except comsim.COMError as exc:
            return _failed(exc), "nothing was sent" in str(exc)

    return (await _together((srv, disconnect), (cli, call)))[1]


async def disconnect_races_git_get(rt: comsim.Runtime) -> str:
    """cli gets the object from the GIT while srv disconnects it: a failed get reads the
    stub's connection and takes no lock."""
    (srv, cli), obj, _ = await _served(rt, "cli")

    async def register() -> int:
        return rt.git.RegisterInterfaceInGlobal(obj, ILog)

    cookie = await srv.run(register)

    async def disconnect() -> None:
        comsim.CoDisconnectObject(obj)

    async def get() -> str:
        try:
            rt.git.GetInterfaceFromGlobal(cookie, ILog)
        except comsim.COMError as exc:
            return _failed(exc)
        return "got"

    return str((await _together((srv, disconnect), (cli, get)))[1])


class IHold(comsim.Interface):
    async def Take(self, obj: Any) -> str: ...


class Hold(comsim.CoClass, IHold):
    async def Take(self, obj: Any) -> str:
        return "took"


async def disconnect_races_passing_proxy(rt: comsim.Runtime) -> str:
    """cli passes its proxy to the object as an argument of a call to a third STA while srv
    disconnects the object: a proxy to a disconnected object is refused as it is packed."""
    (srv, cli, third), obj, stream = await _served(rt, "cli", "third")

    async def make() -> comsim.MarshalStream:
        return comsim.marshal_interface(Hold(), IHold, flags=comsim.MSHLFLAGS.TABLESTRONG)

    hold_stream = await third.run(make)
    proxy = await _proxy_in(cli, stream)

    async def get_hold() -> Any:
        return comsim.unmarshal_interface(hold_stream, IHold)

    hold = await cli.run(get_hold)

    async def disconnect() -> None:
        comsim.CoDisconnectObject(obj)

    async def give() -> str:
        try:
            return str(await hold.Take(proxy))
        except comsim.COMError as exc:
            return _failed(exc)

    return str((await _together((srv, disconnect), (cli, give)))[1])


async def foreign_release_races_call(rt: comsim.Runtime) -> Any:
    """``other`` releases cli's proxy's last count (Release is allowed from any apartment,
    R12) while cli calls through it: the call runs, or the proxy is dead (R34)."""
    (_srv, cli, other), _obj, stream = await _served(rt, "cli", "other")
    proxy = await _proxy_in(cli, stream)

    async def release() -> int:
        return int(proxy.Release())

    async def call() -> Any:
        try:
            return await proxy.Log("x")
        except comsim.COMError as exc:
            return _failed(exc)

    return (await _together((other, release), (cli, call)))[1]


async def release_races_foreign_use(rt: comsim.Runtime) -> str:
    """cli releases its proxy's last count while ``other`` uses the proxy (wrongly): R12's
    checks say CO_E_OBJNOTCONNECTED for a dead proxy, else RPC_E_WRONG_THREAD."""
    (_srv, cli, other), _obj, stream = await _served(rt, "cli", "other")
    proxy = await _proxy_in(cli, stream)

    async def release() -> int:
        return int(proxy.Release())

    async def use() -> str:
        try:
            proxy.QueryInterface(ILog)
        except comsim.COMError as exc:
            return _failed(exc)
        return "used"

    return str((await _together((cli, release), (other, use)))[1])


async def call_object_release_races_qi(rt: comsim.Runtime) -> str:
    """``other`` releases cli's call object (its last reference; any thread may, R25) while
    cli asks it for ISynchronize."""
    (_srv, cli, other), _obj, stream = await _served(rt, "cli", "other")

    async def create() -> Any:
        factory = comsim.unmarshal_interface(stream, ILog).QueryInterface(comsim.ICallFactory)
        return factory.CreateCall(AsyncILog)

    call = await cli.run(create)

    async def release() -> int:
        return int(call.Release())

    async def ask() -> str:
        try:
            call.QueryInterface(comsim.ISynchronize)
        except comsim.COMError as exc:
            return _failed(exc)
        return "asked"

    return str((await _together((other, release), (cli, ask)))[1])


async def cocancelcall_races_call(rt: comsim.Runtime) -> tuple[Any, ...]:
    """``other`` runs CoCancelCall on cli's thread while cli makes a synchronous call (R31):
    it finds no call (E_NOINTERFACE), or the call, not cancellable (CO_E_CANCEL_DISABLED)."""
    (_srv, cli, other), _obj, stream = await _served(rt, "cli", "other")
    proxy = await _proxy_in(cli, stream)

    async def call() -> Any:
        return await proxy.Log("x")

    async def cancel() -> str:
        return hr.name(await comsim.CoCancelCall(cli.thread_id, 0))

    return await _together((cli, call), (other, cancel))


async def shutdown_races_call(rt: comsim.Runtime) -> tuple[bool, Any]:
    """``third`` shuts srv down while cli reads ``srv.alive`` and calls srv's object (R18)."""
    (srv, cli, third), _obj, stream = await _served(rt, "cli", "third")
    proxy = await _proxy_in(cli, stream)

    async def shut() -> None:
        await srv.shutdown()

    async def call() -> tuple[bool, Any]:
        alive = srv.alive
        try:
            return alive, await proxy.Log("x")
        except comsim.COMError as exc:
            return alive, (_failed(exc), "nothing was sent" in str(exc))

    return (await _together((third, shut), (cli, call)))[1]


DISCONNECTED = hr.name(hr.RPC_E_DISCONNECTED)
NOT_CONNECTED = hr.name(hr.CO_E_OBJNOTCONNECTED)
#: each scenario, with every outcome it has (``exhaustive(reduce=False)``: every order)
CASES = [
    (disconnect_races_call, {1, (DISCONNECTED, True), (DISCONNECTED, False)}),
    (disconnect_races_git_get, {"got", NOT_CONNECTED}),
    (disconnect_races_passing_proxy, {"took", NOT_CONNECTED, DISCONNECTED}),
    (foreign_release_races_call, {1, NOT_CONNECTED}),
    (release_races_foreign_use, {NOT_CONNECTED, hr.name(hr.RPC_E_WRONG_THREAD)}),
    (call_object_release_races_qi, {"asked", NOT_CONNECTED}),
    (cocancelcall_races_call, {(1, hr.name(hr.E_NOINTERFACE)),
                               (1, hr.name(hr.CO_E_CANCEL_DISABLED))}),
    (shutdown_races_call, {(True, 1), (True, (DISCONNECTED, False)),
                           (False, (DISCONNECTED, True))}),
]


@pytest.mark.parametrize(("scenario", "outcomes"), CASES, ids=[c[0].__name__ for c in CASES])
def test_exhaustive_reaches_every_outcome(scenario: Any, outcomes: set[Any]) -> None:
    found = exhaustive(scenario, 2_000)
    assert found.exhausted
    assert set(found) == outcomes
    for strategy in ("random", "pct-channels"):
        sampled = explore(scenario, range(150), strategy=strategy)
        assert set(sampled) <= set(found), strategy


@pytest.mark.parametrize(("scenario", "outcomes"), CASES, ids=[c[0].__name__ for c in CASES])
def test_every_order_has_those_outcomes(scenario: Any, outcomes: set[Any]) -> None:
    """The pinned outcome sets are every order's, unreduced."""
    every = exhaustive(scenario, 2_000, reduce=False)
    assert every.exhausted and set(every) == outcomes


def test_two_reads_of_a_connection_commute() -> None:
    """Two callers of one object only read its connection: their deliveries still commute;
    a read and a write of the same apartment's stubs do not."""
    read, write = frozenset({(CONN_READ, "srv")}), frozenset({(CONN, "srv")})
    assert not conflict(read, read)
    assert conflict(read, write) and conflict(write, read) and conflict(write, write)
    assert not conflict(read, frozenset({(CONN, "other")}))


def test_the_fields_are_plain_outside_exploration() -> None:
    """Outside exploration nothing is noted: ``Stub.conn`` is its slot again, and a runtime's
    pending calls a plain dict."""
    slot = vars(Stub)["conn"]
    with watching():
        assert vars(Stub)["conn"] is not slot
    assert vars(Stub)["conn"] is slot
    exhaustive(disconnect_races_call, 3)
    assert vars(Stub)["conn"] is slot
    assert "_refs" not in vars(CallObject)

    async def plain(rt: comsim.Runtime) -> bool:
        return type(rt._outgoing) is dict

    assert set(explore(plain, range(1))) == {True}
