"""Interfaces that several test files declare alike, declared once.

Only interfaces whose declarations were the same in every file live here: an interface's name
gives its iid (``comsim:<qualname>``), so a test's own differently-shaped ``ICalc`` or
``IWork`` stays in that test, under its own name.
"""

from __future__ import annotations

import comsim


class ICalc(comsim.Interface):
    """The smallest useful interface: one synchronous method."""

    async def Add(self, a: int, b: int) -> int: ...


class IPing(comsim.Interface):
    """A method with no arguments whose answer says where it ran (servers differ by test)."""

    async def Ping(self) -> str: ...


class ISum(comsim.Interface):
    """``Add`` again, for a server that makes its own call objects (ICallFactory, R26)."""

    async def Add(self, a: int, b: int) -> int: ...


AsyncISum = comsim.async_interface(ISum)
