"""Server objects (CoClasses) and server-side routines that several test files share.

A server a test has reshaped (another ``cancel_policy``, a log, a counter) stays in its test:
what is here is exactly what each user had.
"""

from __future__ import annotations

import anyio

import comsim
from comsim import hresult as hr

from .ifaces import ICalc


class Calc(comsim.CoClass, ICalc):
    """``ICalc`` with nothing else: ``Add`` returns the sum (``cancel_policy`` "interrupt")."""

    async def Add(self, a: int, b: int) -> int:
        return a + b


async def until_cancelled() -> None:
    """What a cooperative COM server does: poll CoTestCancel (R30) until its call is cancelled.

    Call it from a server method; it returns once ``CoTestCancel()`` stops answering
    ``RPC_S_CALLPENDING`` (polling every millisecond).
    """
    while comsim.CoTestCancel() == hr.RPC_S_CALLPENDING:
        await anyio.sleep(0.001)
