"""Lifetimes by reference counts (R7; R17 and R18 where a stub goes).

The object's own count shows the stub's one reference on it (Wine's ``cLocks``): ``_locks``
gives it minus the creator's reference, so 1 while a stub holds it and 0 once it has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

import comsim
import comsim.testing
from comsim import MSHLFLAGS, hresult

from ..helpers import Calc, ICalc, drain, serve
from .test_marshal import ahr_of, hr_of

N, S, W = MSHLFLAGS.NORMAL, MSHLFLAGS.TABLESTRONG, MSHLFLAGS.TABLEWEAK


async def _locks(obj: Any) -> int:
    """The references on ``obj`` besides its creator's (the stub's, and any QueryInterface)."""
    n = int(obj.AddRef())
    obj.Release()
    return n - 2


async def _get(stream: comsim.MarshalStream) -> Any:
    return comsim.unmarshal_interface(stream)


async def _release(p: Any) -> int:
    return int(p.Release())


async def _release_data(stream: comsim.MarshalStream) -> None:
    comsim.release_marshal_data(stream)


async def _try(stream: comsim.MarshalStream) -> int:
    return hr_of(comsim.unmarshal_interface, stream)


async def _marshal(obj: Any, flags: MSHLFLAGS) -> comsim.MarshalStream:
    return comsim.marshal_interface(obj, ICalc, flags=flags)


@pytest.mark.asyncio
async def test_normal_marshal_and_release(rt: comsim.Runtime) -> None:
    """Wine: test_normal_marshal_and_release. The first marshal makes a stub holding one
    reference on the object; releasing the data releases the stub, and the object."""
    # R7
    b = await rt.create_sta("b")
    obj, stream = await serve(b)
    assert await b.run(_locks, obj) == 1
    with comsim.testing.capture_trace() as events:
        await b.run(_release_data, stream)
    assert await b.run(_locks, obj) == 0
    gone = events.events("stub.disconnected")
    assert [(e["reason"], e["object"], e["server"]) for e in gone] == [("released", "Calc", "b")]


@pytest.mark.asyncio
async def test_marshal_and_unmarshal_invalid(rt: comsim.Runtime) -> None:
    """Wine: test_marshal_and_unmarshal_invalid. Released normal data unmarshals (S_OK) to a
    disconnected proxy whose calls fail with RPC_E_DISCONNECTED; no lock is taken."""
    # R7
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, stream = await serve(b)
    await b.run(_release_data, stream)
    p = await a.run(_get, stream)
    assert isinstance(p, comsim.Proxy)

    async def call() -> int:
        return await ahr_of(p.Add, 1, 2)

    assert await a.run(call) == hresult.RPC_E_DISCONNECTED
    assert await b.run(_locks, obj) == 0
    assert await a.run(_release, p) == 0
    assert await b.run(_try, stream) == hresult.CO_E_OBJNOTCONNECTED  # at home (choice)


@pytest.mark.asyncio
async def test_interthread_marshal_and_unmarshal(rt: comsim.Runtime) -> None:
    """Wine: test_interthread_marshal_and_unmarshal. Unmarshalling moves the data's reference
    to the proxy manager; its last release lets the object go."""
    # R7
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, stream = await serve(b)
    p = await a.run(_get, stream)
    assert await b.run(_locks, obj) == 1
    assert await a.run(_release, p) == 0
    await drain(rt, b)  # R1: the release from a reaches b as a message
    assert await b.run(_locks, obj) == 0


@pytest.mark.asyncio
async def test_same_apartment_unmarshal_failure(rt: comsim.Runtime) -> None:
    """Wine: test_same_apartment_unmarshal_failure. Unmarshalling at home for an interface the
    object lacks fails with E_NOINTERFACE, consumes the data and releases the stub."""
    # R7 R9
    b = await rt.create_sta("b")

    class IMissing(comsim.Interface):
        async def Nothing(self) -> None: ...

    async def use() -> tuple[int, int, int]:
        obj = Calc()
        stream = comsim.marshal_interface(obj, comsim.IUnknown)
        before = await _locks(obj)
        code = hr_of(comsim.unmarshal_interface, stream, IMissing)
        return before, code, await _locks(obj)

    assert await b.run(use) == (1, hresult.E_NOINTERFACE, 0)


@pytest.mark.asyncio
async def test_normal_marshal_and_unmarshal_at_home(rt: comsim.Runtime) -> None:
    """Wine: test_normal_marshal_and_unmarshal. At home the unmarshal gives the object itself
    (one reference added) and the data's reference on the stub goes: so does the stub."""
    # R7 R8
    b = await rt.create_sta("b")

    async def use() -> tuple[bool, int]:
        obj = Calc()
        back = comsim.unmarshal_interface(comsim.marshal_interface(obj, ICalc))
        n = await _locks(obj)  # the unmarshal's own reference, no stub's
        return back is obj, n

    assert await b.run(use) == (True, 1)


@pytest.mark.asyncio
async def test_tableweak_marshal_and_unmarshal_twice(rt: comsim.Runtime) -> None:
    """Wine: test_tableweak_marshal_and_unmarshal_twice. Weak data keeps the stub only while a
    strong reference (here the proxy manager) exists; once the proxies are released the stub
    goes although the weak data remains, and the data then gives CO_E_OBJNOTREG."""
    # R7
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, stream = await serve(b, flags=W)
    p1 = await a.run(_get, stream)
    p2 = await a.run(_get, stream)
    assert p1 is p2  # R34: one manager, count 2
    assert await b.run(_locks, obj) == 1
    assert await a.run(_release, p1) == 1
    assert await b.run(_locks, obj) == 1
    assert await a.run(_release, p2) == 0
    await drain(rt, b)  # R1: the release from a reaches b as a message
    assert await b.run(_locks, obj) == 0
    assert await a.run(_try, stream) == hresult.CO_E_OBJNOTREG


@pytest.mark.asyncio
async def test_tableweak_marshal_releasedata1(rt: comsim.Runtime) -> None:
    """Wine: test_tableweak_marshal_releasedata1. Releasing the weak data while a proxy holds
    the stub: the object stays; the proxy's last release then lets it go."""
    # R7
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, stream = await serve(b, flags=W)
    p1 = await a.run(_get, stream)
    await b.run(_release_data, stream)
    assert await b.run(_locks, obj) == 1

    async def call() -> int:
        return int(await p1.Add(2, 2))

    assert await a.run(call) == 4
    assert await a.run(_try, stream) == hresult.CO_E_OBJNOTREG  # released weak data
    assert await a.run(_release, p1) == 0
    await drain(rt, b)  # R1: the release from a reaches b as a message
    assert await b.run(_locks, obj) == 0


@pytest.mark.asyncio
async def test_tableweak_marshal_releasedata2(rt: comsim.Runtime) -> None:
    """Wine: test_tableweak_marshal_releasedata2. Releasing the only (weak) data with no
    strong reference lets the object go; unmarshalling it then gives CO_E_OBJNOTREG."""
    # R7
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, stream = await serve(b, flags=W)
    with comsim.testing.capture_trace() as events:
        await b.run(_release_data, stream)
    assert await b.run(_locks, obj) == 0
    assert [e["reason"] for e in events.events("stub.disconnected")] == ["released"]
    assert await a.run(_try, stream) == hresult.CO_E_OBJNOTREG


@pytest.mark.asyncio
async def test_tableweak_and_normal_marshal_and_releasedata(rt: comsim.Runtime) -> None:
    """Wine: test_tableweak_and_normal_marshal_and_releasedata. Releasing the normal data
    frees the object despite the weak data; the weak data then gives CO_E_OBJNOTREG."""
    # R7
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, weak = await serve(b, flags=W)
    normal = await b.run(_marshal, obj, N)
    assert await b.run(_locks, obj) == 1  # one stub for both
    await b.run(_release_data, normal)
    assert await b.run(_locks, obj) == 0
    assert await a.run(_try, weak) == hresult.CO_E_OBJNOTREG


@pytest.mark.asyncio
async def test_two_tableweak_marshal_and_releasedata(rt: comsim.Runtime) -> None:
    """Wine: test_two_tableweak_marshal_and_releasedata. The stub goes with the last of its
    weak data."""
    # R7
    b = await rt.create_sta("b")
    obj, w1 = await serve(b, flags=W)
    w2 = await b.run(_marshal, obj, W)
    await b.run(_release_data, w1)
    assert await b.run(_locks, obj) == 1
    await b.run(_release_data, w2)
    assert await b.run(_locks, obj) == 0


@pytest.mark.asyncio
async def test_tablestrong_marshal_and_unmarshal_twice(rt: comsim.Runtime) -> None:
    """Wine: test_tablestrong_marshal_and_unmarshal_twice. Strong data keeps the object after
    every proxy is released, until the data itself is released (from any apartment)."""
    # R7
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, stream = await serve(b, flags=S)
    p1 = await a.run(_get, stream)
    p2 = await a.run(_get, stream)
    await a.run(_release, p1)
    await a.run(_release, p2)
    assert await b.run(_locks, obj) == 1
    p3 = await a.run(_get, stream)  # a new manager, the stub still connected
    assert p3 is not p1
    assert await a.run(_release, p3) == 0
    await a.run(_release_data, stream)
    await drain(rt, b)  # R1: the release from a reaches b as a message
    assert await b.run(_locks, obj) == 0
    assert await a.run(_try, stream) == hresult.CO_E_OBJNOTCONNECTED


@pytest.mark.asyncio
async def test_proxy_marshal_and_unmarshal(rt: comsim.Runtime) -> None:
    """Wine: test_proxy_marshal_and_unmarshal. Data marshalled from a proxy holds the stub
    after the original proxy is released; unmarshalled and released, the object goes."""
    # R7 R34
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    obj, stream = await serve(b)
    p = await a.run(_get, stream)

    async def remarshal() -> list[comsim.MarshalStream]:
        return [comsim.marshal_interface(p, ICalc) for _ in range(3)]

    streams = await a.run(remarshal)
    assert await a.run(_release, p) == 0
    assert await b.run(_locks, obj) == 1
    for s in streams:
        q = await c.run(_get, s)
        assert await c.run(_release, q) == 0
        await drain(rt, b)  # R1: the last release, from c, reaches b as a message
        assert await b.run(_locks, obj) == (0 if s is streams[-1] else 1)


@pytest.mark.asyncio
async def test_git_entry_is_a_strong_reference(rt: comsim.Runtime) -> None:
    # R7 R10: a GIT entry holds the stub until revoked
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def register() -> tuple[Any, int]:
        obj = Calc()
        return obj, rt.git.RegisterInterfaceInGlobal(obj, ICalc)

    obj, cookie = await b.run(register)

    async def get_release() -> int:
        return int(rt.git.GetInterfaceFromGlobal(cookie, ICalc).Release())

    assert await a.run(get_release) == 0
    assert await b.run(_locks, obj) == 1

    async def revoke() -> None:
        rt.git.RevokeInterfaceFromGlobal(cookie)

    with comsim.testing.capture_trace() as events:
        await a.run(revoke)
    await drain(rt, b)  # R1: the release from a reaches b as a message
    assert await b.run(_locks, obj) == 0
    assert [e["reason"] for e in events.events("stub.disconnected")] == ["released"]


@pytest.mark.asyncio
async def test_marshalling_again_makes_a_new_stub(rt: comsim.Runtime) -> None:
    # R7: once its stub went, the object's next marshal makes a new one, which works
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, stream = await serve(b)
    p = await a.run(_get, stream)
    await a.run(_release, p)
    await drain(rt, b)  # R1: the release from a reaches b as a message
    assert await b.run(_locks, obj) == 0
    again = await b.run(_marshal, obj, N)
    assert await b.run(_locks, obj) == 1
    q = await a.run(_get, again)
    assert q is not p

    async def call() -> int:
        return int(await q.Add(4, 5))

    assert await a.run(call) == 9


@pytest.mark.asyncio
async def test_disconnect_stub(rt: comsim.Runtime) -> None:
    """Wine: test_disconnect_stub and the CoDisconnectObject part of
    test_lock_object_external. CoDisconnectObject releases the stub's reference whatever data
    remain, weak included; every outstanding data then gives CO_E_OBJNOTCONNECTED."""
    # R7 R17
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, weak = await serve(b, flags=W)
    strong = await b.run(_marshal, obj, S)
    normal = await b.run(_marshal, obj, N)

    async def disconnect() -> None:
        comsim.CoDisconnectObject(obj)

    with comsim.testing.capture_trace() as events:
        await b.run(disconnect)
    assert await b.run(_locks, obj) == 0
    assert [e["reason"] for e in events.events("stub.disconnected")] == ["CoDisconnectObject"]
    for s in (weak, strong, normal):
        assert await a.run(_try, s) == hresult.CO_E_OBJNOTCONNECTED
    await b.run(_release_data, normal)  # late releases do nothing
    assert await b.run(_locks, obj) == 0


@pytest.mark.asyncio
async def test_stub_apartment_shutdown(rt: comsim.Runtime) -> None:
    """Wine: test_marshal_stub_apartment_shutdown. The server apartment's shutdown releases
    its stubs (traced with reason ``shutdown``); the proxy's calls fail with
    RPC_E_DISCONNECTED and its Release still works."""
    # R7 R18
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, stream = await serve(b)
    _obj2, weak = await serve(b, flags=W)
    p = await a.run(_get, stream)
    with comsim.testing.capture_trace() as events:
        await b.shutdown()
    reasons = sorted(e["reason"] for e in events.events("stub.disconnected"))
    assert reasons == ["shutdown", "shutdown"]
    assert await _locks(obj) == 0

    async def call() -> int:
        return await ahr_of(p.Add, 1, 2)

    assert await a.run(call) == hresult.RPC_E_DISCONNECTED
    assert await a.run(_try, weak) == hresult.CO_E_OBJNOTCONNECTED
    assert await a.run(_release, p) == 0


@pytest.mark.asyncio
async def test_proxy_apartment_shutdown(rt: comsim.Runtime) -> None:
    """Wine: test_marshal_proxy_apartment_shutdown. The client apartment's shutdown releases
    its proxy managers: the object goes; the proxy is dead (CO_E_OBJNOTCONNECTED) and its
    Release gives 0."""
    # R7 R18 R34
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    c = await rt.create_sta("c")
    obj, stream = await serve(b)
    p = await a.run(_get, stream)
    with comsim.testing.capture_trace() as events:
        await a.shutdown()
    await drain(rt, b)  # R1: the release from a's teardown reaches b as a message
    assert await b.run(_locks, obj) == 0
    assert [e["reason"] for e in events.events("stub.disconnected")] == ["released"]

    async def call() -> int:
        return await ahr_of(p.Add, 1, 2)

    assert await c.run(call) == hresult.CO_E_OBJNOTCONNECTED
    assert p.Release() == 0


@pytest.mark.asyncio
@pytest.mark.deterministic_only  # one loop: a task of the apartment's outlives its teardown
async def test_a_proxy_manager_made_after_its_apartments_teardown_goes_at_once(
        rt: comsim.Runtime) -> None:
    """A task that the apartment's teardown leaves behind (made with ``create_task`` inside a
    unit, it swallows every cancel) brings an object in after the teardown released the
    apartment's proxy managers: that manager is released at once too, so that the object goes
    when its marshal data is released."""
    # R7 R18 R34
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, stream = await serve(b, flags=S)
    go, done = asyncio.Event(), asyncio.Event()
    got: list[Any] = []
    kept: list[asyncio.Task[None]] = []

    async def later() -> None:
        while not go.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # the teardown's, every time
                await go.wait()
        got.append(comsim.unmarshal_interface(stream))  # in ``a``, after its teardown
        done.set()

    async def start() -> None:
        kept.append(asyncio.get_running_loop().create_task(later()))

    await a.run(start)
    await a.shutdown()
    go.set()
    await done.wait()
    assert await b.run(_locks, obj) == 1  # the data's reference, not the manager's
    await b.run(_release_data, stream)
    assert await b.run(_locks, obj) == 0
    assert got[0].Release() == 0


@pytest.mark.asyncio
async def test_references_in_arguments_hold_the_object(rt: comsim.Runtime) -> None:
    # R7 R11: an object passed in an argument is held by the receiver's proxy manager; it goes
    # when that manager's count reaches 0
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    class IKeep(comsim.Interface):
        async def Keep(self, value: Any) -> None: ...
        async def Drop(self) -> int: ...

    class Keeper(comsim.CoClass, IKeep):
        def __init__(self) -> None:
            super().__init__()
            self.kept: Any = None

        async def Keep(self, value: Any) -> None:
            self.kept = value

        async def Drop(self) -> int:
            return int(self.kept.Release())

    _k, s_keep = await serve(b, Keeper, IKeep, flags=S)

    async def give() -> tuple[Any, Any]:
        keeper = comsim.unmarshal_interface(s_keep)
        mine = Calc()
        await keeper.Keep(mine)
        return keeper, mine

    keeper, mine = await a.run(give)
    assert await a.run(_locks, mine) == 1  # B's manager holds A's object's stub

    async def drop() -> int:
        return int(await keeper.Drop())

    assert await a.run(drop) == 0
    await drain(rt, a)  # R1: b let mine's stub go; its Release comes to a as a message
    assert await a.run(_locks, mine) == 0


@pytest.mark.asyncio
async def test_unpicklable_value_releases_its_references(rt: comsim.Runtime) -> None:
    # R7 R11: a value that fails to copy takes no reference with it
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    class IEcho(comsim.Interface):
        async def Echo(self, value: Any) -> Any: ...

    class Echo(comsim.CoClass, IEcho):
        async def Echo(self, value: Any) -> Any:
            return value

    _e, s_echo = await serve(b, Echo, IEcho, flags=S)

    async def use() -> tuple[int, int, int]:
        echo = comsim.unmarshal_interface(s_echo)
        mine = Calc()
        code = await ahr_of(echo.Echo, [mine, lambda: 1])
        return code, await _locks(mine), await echo.Echo(7)

    assert await a.run(use) == (hresult.RPC_X_BAD_STUB_DATA, 0, 7)
