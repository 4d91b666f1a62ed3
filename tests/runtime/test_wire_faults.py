"""Values that fail to cross (R7, R11): nothing leaks, and every failure is a COM outcome.

A value that fails to unpack part-way has already brought in the object references it met
first (a proxy, one count on its manager; the object itself at home, one reference added): they
are released again, on either side of a call -- the client unpacking a result, the server
unpacking arguments. Pickling hooks are user code: whatever they raise, ``SystemExit``,
``KeyboardInterrupt`` and a ``CancelledError`` of their own included, fails the value with
``RPC_X_BAD_STUB_DATA`` and never escapes raw, on the caller's side or on the server's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import comsim
import comsim.testing
from comsim import hresult

from ..helpers import Calc, drain, hresult_of, new_call, serve

INFINITE = comsim.INFINITE


class Odd(BaseException):
    """A BaseException of the user's own."""


#: what pickling hooks raise: nothing of it may escape a call (the fault boundary)
RAISES: dict[str, type[BaseException]] = {
    "Odd": Odd,
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "CancelledError": asyncio.CancelledError,
    "GeneratorExit": GeneratorExit,
}


def _spoil(name: str) -> Any:
    raise RAISES.get(name, ValueError)(f"{name} from the reconstructor")


class Spoiled:
    """Pickles, but its reconstructor raises ``name`` (else ValueError) where it arrives."""

    def __init__(self, name: str = "ValueError") -> None:
        self.name = name

    def __reduce__(self) -> Any:
        return (_spoil, (self.name,))


class Refused:
    """Its ``__reduce__`` raises ``name``: it does not pickle."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> Any:
        raise RAISES[self.name](f"{self.name} from __reduce__")


class Gift(Calc):
    """An object that crosses inside a value."""


class IDepot(comsim.Interface):
    async def Take(self, value: Any) -> int: ...
    async def Hand(self, what: str, name: str) -> Any: ...
    async def Pair(self) -> Any: ...


AsyncIDepot = comsim.async_interface(IDepot)


class Depot(comsim.CoClass, IDepot):
    """Takes values (counting the calls that ran) and hands out values holding its gifts."""

    def __init__(self) -> None:
        super().__init__()
        self.gift = Gift()
        self.other = Gift()
        self.took = 0

    async def Take(self, value: Any) -> int:
        self.took += 1
        return len(value)

    async def Hand(self, what: str, name: str) -> Any:
        if what == "spoiled":  # the gift's reference comes first, then the failure
            return [self.gift, Spoiled(name)]
        return Refused(name)

    async def Pair(self) -> Any:
        return [self.gift, self.other]


async def _count(obj: Any) -> int:
    """The references on ``obj`` (run it in the object's apartment, or in the NA's)."""
    n = int(obj.AddRef())
    obj.Release()
    return n - 1


async def _depot(rt: comsim.Runtime, server: str) -> tuple[Any, comsim.Apartment, Any, Any]:
    """A Depot in an STA "srv" (or in the NA), and a proxy to it in an STA "cli"."""
    srv = await rt.create_sta("srv") if server == "sta" else rt.nta
    cli = await rt.create_sta("cli")
    depot, stream = await serve(srv, Depot, IDepot)

    async def get() -> Any:
        return comsim.unmarshal_interface(stream)

    return srv, cli, depot, await cli.run(get)


# --------------------------------------------------------------------------- R7: no leak
@pytest.mark.parametrize("server", ["sta", "na"])
@pytest.mark.asyncio
async def test_result_failing_to_unpack_releases_what_it_brought_in(
        rt: comsim.Runtime, server: str) -> None:
    # R7 R11: the result [gift, spoiled] brings a proxy to the gift into the client, then
    # fails to unpickle (RPC_X_BAD_STUB_DATA): the proxy is released again, so the gift's stub
    # goes and only its creator's reference is left
    srv, cli, depot, proxy = await _depot(rt, server)

    async def hand() -> int:
        return await hresult_of(proxy.Hand("spoiled", "ValueError"))

    with comsim.testing.capture_trace() as events:
        assert await cli.run(hand) == hresult.RPC_X_BAD_STUB_DATA
    assert [e["reason"] for e in events.events("stub.disconnected", object="Gift")] == [
        "released"]
    await drain(rt, srv)  # R1: cli let the gift's stub go; its Release comes to srv
    assert await srv.run(_count, depot.gift) == 1


@pytest.mark.parametrize("server", ["sta", "na"])
@pytest.mark.asyncio
async def test_arguments_failing_to_unpack_release_what_they_brought_in(
        rt: comsim.Runtime, server: str) -> None:
    # R7 R11: on the server's side the same: the arguments [event, gift, the server's own
    # object, spoiled] bring in a proxy to the client's gift and the object itself (R8, one
    # reference added), then fail: the method never runs, both are released again; the
    # free-threaded event passed by reference holds no count and keeps its own (R23)
    srv, cli, depot, proxy = await _depot(rt, server)
    before = await srv.run(_count, depot)

    async def take() -> tuple[int, Any, int, int]:
        gift = Gift()
        event = comsim.StdEvent()
        code = await hresult_of(proxy.Take([event, gift, proxy, Spoiled()]))
        return code, gift, await _count(gift), await _count(event)

    code, gift, gift_count, event_count = await cli.run(take)
    assert code == hresult.RPC_X_BAD_STUB_DATA
    assert depot.took == 0  # the method never ran
    assert "_com_stub" not in gift.__dict__  # the server's proxy went, and the stub with it
    if server == "na":  # R5 R1: NA code on cli's thread let the stub go: released at once
        assert gift_count == 1
    # R1: from srv, the gift's own Release comes to cli as a message
    await drain(rt, cli)
    assert await cli.run(_count, gift) == 1  # the creator's
    assert event_count == 1
    assert await srv.run(_count, depot) == before


@pytest.mark.asyncio
async def test_reference_failing_part_way_releases_the_ones_before(rt: comsim.Runtime) -> None:
    # R7 R17: a reply [a, b] is taken in; then b is disconnected; Finish_ resolves a (a proxy
    # in the client), then fails on b with CO_E_OBJNOTCONNECTED: a's proxy is released again
    srv, cli, depot, proxy = await _depot(rt, "sta")

    async def begin() -> Any:
        call = new_call(proxy, AsyncIDepot)
        call.Begin_Pair()
        sync = call.QueryInterface(comsim.ISynchronize)
        assert await sync.Wait(0, INFINITE) == hresult.S_OK  # the reply is in
        sync.Release()
        return call

    call = await cli.run(begin)

    async def disconnect_b() -> None:
        comsim.CoDisconnectObject(depot.other)

    await srv.run(disconnect_b)

    async def finish() -> int:
        try:
            return await hresult_of(call.Finish_Pair())
        finally:
            call.Release()

    assert await cli.run(finish) == hresult.CO_E_OBJNOTCONNECTED
    assert "_com_stub" not in depot.gift.__dict__
    await drain(rt, srv)  # R1: the gift's own Release comes to srv as a message from cli
    assert await srv.run(_count, depot.gift) == 1


# --------------------------------------------------------------------------- R11: hooks
@pytest.mark.parametrize("name", list(RAISES))
@pytest.mark.parametrize("where", ["argument", "result"])
@pytest.mark.parametrize("server", ["sta", "na"])
@pytest.mark.asyncio
async def test_hook_raising_anything_on_the_callers_side_is_bad_stub_data(
        rt: comsim.Runtime, server: str, where: str, name: str) -> None:
    # R11: an argument whose __reduce__ raises, or a result whose reconstructor raises where
    # it arrives -- SystemExit, KeyboardInterrupt, CancelledError, GeneratorExit, a user
    # BaseException as an Exception -- fails the call with RPC_X_BAD_STUB_DATA, the original
    # chained; an argument fails before the method runs
    _srv, cli, depot, proxy = await _depot(rt, server)

    async def call() -> comsim.COMError:
        try:
            if where == "argument":
                await proxy.Take(Refused(name))
            else:
                await proxy.Hand("spoiled", name)
        except comsim.COMError as exc:
            return exc
        raise AssertionError("no error")

    err = await cli.run(call)
    assert err.hresult == hresult.RPC_X_BAD_STUB_DATA
    assert isinstance(err.__cause__, RAISES[name])
    assert name in str(err)
    assert depot.took == 0
    assert await cli.run(proxy.Take, [1]) == 1  # both apartments serve on


@pytest.mark.parametrize("name", list(RAISES))
@pytest.mark.parametrize("where", ["argument", "result"])
@pytest.mark.parametrize("server", ["sta", "na"])
@pytest.mark.asyncio
async def test_hook_raising_anything_on_the_servers_side_is_bad_stub_data(
        rt: comsim.Runtime, server: str, where: str, name: str) -> None:
    # R11 (not R14: the method did not raise): an argument whose reconstructor raises on the
    # server, or a result whose __reduce__ raises there, fails the call with
    # RPC_X_BAD_STUB_DATA whatever it raises, as for an Exception; the server serves on
    _srv, cli, depot, proxy = await _depot(rt, server)

    async def call() -> comsim.COMError:
        try:
            if where == "argument":
                await proxy.Take(Spoiled(name))
            else:
                await proxy.Hand("refused", name)
        except comsim.COMError as exc:
            return exc
        raise AssertionError("no error")

    err = await cli.run(call)
    assert err.hresult == hresult.RPC_X_BAD_STUB_DATA
    assert name in str(err)
    assert depot.took == 0
    assert await cli.run(proxy.Take, [1]) == 1


class CancelsItsTask:
    """Its ``__reduce__`` cancels the task that pickles it, then raises CancelledError."""

    def __reduce__(self) -> Any:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        raise asyncio.CancelledError("from __reduce__")


@pytest.mark.asyncio
async def test_a_cancel_of_the_task_still_cancels_it(rt: comsim.Runtime) -> None:
    # R11 R32: a hook's CancelledError is its own (RPC_X_BAD_STUB_DATA), but a cancel of the
    # caller's task is not lost: it comes at the task's next await
    _srv, cli, _depot_obj, proxy = await _depot(rt, "sta")
    seen: list[Any] = []

    async def caller() -> None:
        seen.append(await hresult_of(proxy.Take(CancelsItsTask())))
        await asyncio.Event().wait()  # the cancel comes here
        seen.append("not cancelled")

    async def run_caller() -> bool:
        task = asyncio.ensure_future(caller())
        await asyncio.wait([task])
        return task.cancelled()

    assert await cli.run(run_caller) is True
    assert seen == [hresult.RPC_X_BAD_STUB_DATA]
