"""Setting up apartments for a test: an object served in one STA, a proxy to it in another.

The usual scene of a runtime test is two STAs -- a server holding one object and a client
holding a proxy to it::

    p = await pair(rt, lambda: Worker(log), IWork)       # STAs "srv" and "cli"
    await p.client.run(use, p.proxy)

Every helper here does what the test files did by hand, step by step in the same order (which
matters on the deterministic runtime: each ``create_sta`` and ``Apartment.run`` is a step of the
seeded schedule), so a test that moves to them sees the same run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

import comsim
from comsim import MSHLFLAGS

from .ifaces import ICalc
from .servers import Calc


@dataclass
class Pair:
    """What :func:`pair` made: the two STAs, the object (a reference, for tests that look at it
    from its own apartment), its marshal data, and the client's proxy (None if not unmarshalled).
    """

    server: comsim.Apartment
    client: comsim.Apartment
    obj: Any
    stream: comsim.MarshalStream
    proxy: Any = None


async def serve(apt: comsim.Apartment, make: Callable[[], Any] = Calc, iface: Any = ICalc, *,
                flags: MSHLFLAGS = MSHLFLAGS.NORMAL,
                message_filter: Any = None) -> tuple[Any, comsim.MarshalStream]:
    """In ``apt``: construct ``make()`` and marshal it for ``iface`` with ``flags``.

    One ``apt.run`` unit; with ``message_filter``, the unit first registers it as the
    apartment's message filter (R16). Gives ``(obj, stream)``.
    """

    async def unit() -> tuple[Any, comsim.MarshalStream]:
        if message_filter is not None:
            comsim.CoRegisterMessageFilter(message_filter)
        obj = make()
        return obj, comsim.marshal_interface(obj, iface, flags=flags)

    return await apt.run(unit)


def unmarshal(stream: comsim.MarshalStream) -> Callable[[], Awaitable[Any]]:
    """A unit for ``Apartment.run`` that unmarshals ``stream`` there: ``apt.run(unmarshal(s))``."""

    async def get() -> Any:
        return comsim.unmarshal_interface(stream)

    return get


async def pair(rt: comsim.Runtime, make: Callable[[], Any] = Calc, iface: Any = ICalc, *,
               server: str = "srv", client: str = "cli", client_first: bool = False,
               flags: MSHLFLAGS = MSHLFLAGS.NORMAL, message_filter: Any = None,
               proxy: bool = True) -> Pair:
    """Two new STAs: ``server`` with ``make()`` marshalled for ``iface`` (see :func:`serve`), and
    ``client`` with a proxy to it (unless ``proxy=False``: then only the marshal data).

    The STAs are created server first (``client_first=True``: client first); then the object is
    made, then the proxy -- one ``create_sta`` or ``Apartment.run`` each.
    """
    if client_first:
        cli = await rt.create_sta(client)
        srv = await rt.create_sta(server)
    else:
        srv = await rt.create_sta(server)
        cli = await rt.create_sta(client)
    obj, stream = await serve(srv, make, iface, flags=flags, message_filter=message_filter)
    if not proxy:
        return Pair(srv, cli, obj, stream)
    return Pair(srv, cli, obj, stream, await cli.run(unmarshal(stream)))


def new_call(proxy: Any, async_iface: Any, outer: Any = None) -> Any:
    """A fresh call object for ``async_iface`` from ``proxy``'s ICallFactory (R19), the factory
    released again. ``outer`` (a completion sink, R24) is passed only when given."""
    factory = proxy.QueryInterface(comsim.ICallFactory)
    call = (factory.CreateCall(async_iface) if outer is None
            else factory.CreateCall(async_iface, outer=outer))
    factory.Release()
    return call


def add_via(proxy: Any) -> Callable[[], Awaitable[int]]:
    """A unit for ``Apartment.run`` that calls ``proxy.Add(1, 2)`` there."""

    async def add() -> int:
        return await proxy.Add(1, 2)

    return add


async def noop() -> None:
    """A unit that does nothing (a round trip through an apartment's queue)."""
    return None


async def thread_id() -> int:
    """A unit giving the thread its apartment runs on (``comsim.current_thread_id()``)."""
    return comsim.current_thread_id()


async def drain(rt: comsim.Runtime, *apts: comsim.Apartment) -> None:
    """Let every message already sent be taken in (use once no unit of ``apts`` is in a COM
    wait). Threaded: each apartment's loop is FIFO, so a round trip through it comes after
    anything posted to it before. Deterministic: virtual time moves only once nothing is ready,
    i.e. once every message in flight has been delivered."""
    for apt in apts:
        await apt.run(noop)
    if rt.deterministic:
        await anyio.sleep(0.001)


async def shut(*apts: comsim.Apartment) -> None:
    """Shut ``apts`` down, one after the other."""
    for apt in apts:
        await apt.shutdown()


async def hresult_of(aw: Awaitable[Any]) -> int:
    """The HRESULT an awaitable fails with (S_OK if it succeeds)."""
    try:
        await aw
    except comsim.COMError as exc:
        return exc.hresult
    return comsim.hresult.S_OK
