"""Shared pieces of the zoo's scenarios: small interfaces and objects, and a helper to start
units in several apartments at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import comsim


class ILog(comsim.Interface):
    async def Note(self, text: str) -> int: ...


class Log(comsim.CoClass, ILog):
    """An audit log: any call to it is a COM wait for the caller (a point where the caller's
    STA may be re-entered and where other messages may overtake)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    async def Note(self, text: str) -> int:
        self.lines.append(text)
        return len(self.lines)


async def publish(apt: comsim.Apartment, factory: Callable[[], Any], iface: type,
                  keep: dict[str, Any] | None = None, name: str = "obj"
                  ) -> comsim.MarshalStream:
    """Construct ``factory()`` inside ``apt`` and marshal it TABLESTRONG (any apartment may
    unmarshal it any number of times); keep the object itself in ``keep[name]``."""

    async def make() -> comsim.MarshalStream:
        obj = factory()
        if keep is not None:
            keep[name] = obj
        return comsim.marshal_interface(obj, iface, flags=comsim.MSHLFLAGS.TABLESTRONG)

    return await apt.run(make)


async def together(*units: tuple[comsim.Apartment, Callable[..., Awaitable[Any]], tuple[Any, ...]]
                   ) -> list[Any]:
    """Run each ``(apartment, fn, args)`` as a unit of its apartment, all at once (started in
    the order given); their results in that order. An ``AssertionError`` of a unit (a
    planted bug showing) propagates as itself, not inside an exception group."""
    results: list[Any] = [None] * len(units)

    async def one(i: int, apt: comsim.Apartment, fn: Callable[..., Awaitable[Any]],
                  args: tuple[Any, ...]) -> None:
        results[i] = await apt.run(fn, *args)

    try:
        async with anyio.create_task_group() as tg:
            for i, (apt, fn, args) in enumerate(units):
                tg.start_soon(one, i, apt, fn, args)
    except BaseExceptionGroup as group:  # a unit's planted bug: raise it as it is
        match, _ = group.split(AssertionError)
        if match is None:
            raise
        while isinstance(match, BaseExceptionGroup):
            match = match.exceptions[0]
        raise match from None
    return results
