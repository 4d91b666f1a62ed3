"""User code that raises an exception whose ``__str__`` and ``__repr__`` raise too, at every
fault boundary: the failure still becomes its COM outcome, and the apartment serves on.

Before, each boundary formatted the exception into its message plainly, failed in its own
error path and let the ``__str__``'s error out: a server method's STA stopped serving (its
unit never ended: the next call waited for ever), a message filter's call was lost, a neutral
call object's ``Finish_`` never returned, and ``CoCreateInstance``, a call with an argument
that fails to pickle or a result that fails to unpickle raised the ``RuntimeError`` of the
``__str__`` instead of their HRESULT.
"""

from __future__ import annotations

from typing import Any

import pytest

import comsim
from comsim import hresult as hr

from ..helpers import new_call, pair

pytestmark = pytest.mark.asyncio


class Hostile(Exception):
    """Raised by user code; any attempt to show it raises."""

    def __str__(self) -> str:
        raise RuntimeError("str boom")

    def __repr__(self) -> str:
        raise RuntimeError("repr boom")


class FailsToPickle:
    def __reduce__(self) -> Any:
        raise Hostile()


def _rebuild() -> None:
    raise Hostile()


class FailsToUnpickle:
    def __reduce__(self) -> Any:
        return (_rebuild, ())


class IHost(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Boom(self) -> int: ...
    async def Echo(self, value: Any) -> Any: ...
    async def Unpicklable(self) -> Any: ...


AsyncIHost = comsim.async_interface(IHost)


class Host(comsim.CoClass, IHost):
    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Boom(self) -> int:
        raise Hostile()

    async def Echo(self, value: Any) -> Any:
        return value

    async def Unpicklable(self) -> Any:
        return FailsToUnpickle()


class HostileCtor(Host):
    def __init__(self) -> None:
        raise Hostile()


class HostileFilter(comsim.IMessageFilter):
    def HandleInComingCall(self, *args: Any) -> int:
        raise Hostile()

    def RetryRejectedCall(self, *args: Any) -> int:
        return -1

    def MessagePending(self, *args: Any) -> int:
        return comsim.PENDINGMSG_WAITDEFPROCESS


class HostileOuter:
    def __init__(self) -> None:
        self.signals = 0

    def Signal(self) -> None:
        self.signals += 1
        raise Hostile()


async def _failure(aw: Any) -> tuple[int, str]:
    try:
        await aw
    except comsim.COMError as exc:
        return exc.hresult, str(exc)
    return hr.S_OK, ""


async def test_a_method_raising_it_fails_its_call_and_the_sta_serves_on(
        rt: comsim.Runtime) -> None:
    # R14, R2: before, the STA's unit never ended and the next call waited for ever
    p = await pair(rt, Host, IHost)

    async def use() -> tuple[tuple[int, str], int]:
        return await _failure(p.proxy.Boom()), await p.proxy.Add(1, 2)

    (code, text), after = await p.client.run(use)
    assert code == hr.RPC_E_SERVERFAULT
    assert "Host.Boom raised Hostile (its str() raised RuntimeError)" in text
    assert after == 3


async def test_a_method_in_the_na_raising_it_fails_its_call_sync_and_async(
        rt: comsim.Runtime) -> None:
    # R14, R5: before, a synchronous call raised the RuntimeError of the __str__, and a call
    # object's Finish_ never returned
    async def make() -> comsim.MarshalStream:
        return comsim.marshal_interface(Host(), IHost)

    stream = await rt.nta.run(make)
    cli = await rt.create_sta("cli")

    async def use() -> tuple[tuple[int, str], tuple[int, str], int]:
        proxy = comsim.unmarshal_interface(stream)
        sync = await _failure(proxy.Boom())
        call = new_call(proxy, AsyncIHost)
        call.Begin_Boom()
        return sync, await _failure(call.Finish_Boom()), await proxy.Add(1, 2)

    sync, begun, after = await cli.run(use)
    assert sync[0] == begun[0] == hr.RPC_E_SERVERFAULT
    assert "Hostile (its str() raised RuntimeError)" in sync[1]
    assert "Hostile (its str() raised RuntimeError)" in begun[1]
    assert after == 3


async def test_a_constructor_raising_it_fails_cocreateinstance_with_e_fail(
        rt: comsim.Runtime) -> None:
    # R33: before, the RuntimeError of the __str__ came out of CoCreateInstance
    cli = await rt.create_sta("cli")

    async def create() -> tuple[int, str]:
        return await _failure(comsim.CoCreateInstance(HostileCtor, IHost))

    code, text = await cli.run(create)
    assert code == hr.E_FAIL
    assert "HostileCtor() raised Hostile (its str() raised RuntimeError)" in text


async def test_pickling_hooks_raising_it_fail_the_value_with_bad_stub_data(
        rt: comsim.Runtime) -> None:
    # R11, on either side of a call: an argument that fails to pickle, a result that fails
    # to unpickle; before, the RuntimeError of the __str__ came out of the call
    p = await pair(rt, Host, IHost)

    async def use() -> tuple[tuple[int, str], tuple[int, str], int]:
        sent = await _failure(p.proxy.Echo(FailsToPickle()))
        back = await _failure(p.proxy.Unpicklable())
        return sent, back, await p.proxy.Add(1, 2)

    sent, back, after = await p.client.run(use)
    assert sent[0] == back[0] == hr.RPC_X_BAD_STUB_DATA
    assert "cannot be marshalled by value (Hostile (its str() raised RuntimeError))" in sent[1]
    assert "could not be unmarshalled" in back[1]
    assert after == 3


async def test_a_message_filter_raising_it_counts_as_the_default_answer(
        rt: comsim.Runtime) -> None:
    # R16: HandleInComingCall that raises is traced and taken as SERVERCALL_ISHANDLED; before,
    # the tracing of it raised, and the call was lost (its caller waited for ever)
    p = await pair(rt, Host, IHost, message_filter=HostileFilter())

    async def use() -> tuple[int, int]:
        return await p.proxy.Add(1, 2), await p.proxy.Add(3, 4)

    with comsim.testing.capture_trace() as events:
        assert await p.client.run(use) == (3, 7)
    failed = events.events("filter.error")
    assert len(failed) == 2
    assert all(e["exc"] == "<Hostile: repr() raised RuntimeError>" for e in failed)


async def test_a_signal_raising_it_does_not_lose_the_result(rt: comsim.Runtime) -> None:
    # R24: before, the reply's handling failed in the loop's exception handler
    p = await pair(rt, Host, IHost)
    outer = HostileOuter()

    async def use() -> int:
        call = new_call(p.proxy, AsyncIHost, outer=outer)
        call.Begin_Add(1, 2)
        result: int = await call.Finish_Add()
        return result

    with comsim.testing.capture_trace() as events:
        assert await p.client.run(use) == 3
    assert outer.signals == 1
    (failed,) = events.events("call.signal_failed")
    assert failed["exc"] == "<Hostile: repr() raised RuntimeError>"



class BadRepr:
    """A value passed where it does not belong, whose ``__repr__`` raises."""

    def __repr__(self) -> str:
        raise RuntimeError("repr boom")


async def test_a_refused_argument_whose_repr_raises_still_gives_its_comerror(
        rt: comsim.Runtime) -> None:
    # the message shows what can be shown; before, each of these raised the RuntimeError of
    # the __repr__ instead of the COMError that says what to do
    sta = await rt.create_sta("a")
    bad = BadRepr()

    async def misuse() -> list[tuple[int, str]]:
        got = []
        for attempt in (lambda: comsim.marshal_interface(bad, IHost),
                        lambda: comsim.unmarshal_interface(bad),
                        lambda: rt.git.GetInterfaceFromGlobal(bad, IHost),  # type: ignore[arg-type]
                        lambda: comsim.CoRegisterMessageFilter(bad),
                        lambda: comsim.Runtime(seed=bad)):  # type: ignore[arg-type]
            try:
                attempt()
                got.append((hr.S_OK, ""))
            except comsim.COMError as exc:
                got.append((exc.hresult, str(exc)))
        return got

    got = await sta.run(misuse)
    assert [code for code, _ in got] == [hr.E_INVALIDARG] * 5
    assert all("<BadRepr: repr() raised RuntimeError>" in text for _, text in got)
