"""COM waits (R2): while a unit of an STA waits in a COM wait, the STA may start queued units
nested on its thread; the unit resumes only when it is on top again (last in, first out).

The protocol is in three synchronous-first pieces (``_wait_begins``, ``_wait_ready``,
``_wait_for_top``) that ``com_wait`` composes; a synchronous call (``client.sync_call``, the
hot path) composes the same pieces inline, so that it makes no coroutine for its wait.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import anyio

from .._core.sta import (
    StaScheduler,
    Wait,
    WaitKind,
)
from . import futures
from .context import WHERE, Where
from .futures import settle

#: the causality id of the call a COM wait is for, set by code that waits for a call through
#: a wait that cannot pass it (``ISynchronize.Wait`` on a call object waits in its event's
#: ``Wait``): ``com_wait`` takes it when given none (R16's CALLTYPE_NESTED, R15)
WAIT_CAUSALITY: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "comsim_wait_causality", default=None)


async def plain_wait(fut: asyncio.Future[Any], timeout: float | None,
                     on_cancel: Callable[[], None] | None) -> Any:
    """The wait of a waiter that is no unit of an STA (the MTA, NA code on no STA's thread,
    code in no apartment): ``futures.wait``, and ``on_cancel`` as ``com_wait`` runs it."""
    try:
        return await futures.wait(fut, timeout)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        raise


class ComWaits:
    """The COM-wait part of ``apartment.Apartment`` (a mixin)."""

    __slots__ = ()

    # what the apartment (``apartment.Apartment``) has, for the type checker
    _loop: asyncio.AbstractEventLoop
    _sched: StaScheduler | None
    _closing: bool
    _apply: Callable[[list[Any]], None]

    # ------------------------------------------------------------------ COM waits (R2)
    async def com_wait(self, fut: asyncio.Future[Any], kind: WaitKind = WaitKind.OTHER,
                       causality_id: int | None = None, payload: Any = None,
                       timeout: float | None = None,
                       on_cancel: Callable[[], None] | None = None) -> Any:
        """Wait for ``fut`` as a COM wait: an STA may start queued units meanwhile, and resumes
        only when this unit is on top again. Returns ``fut``'s result, or False on time-out.
        ``causality_id``: of the call waited for (R16), else ``WAIT_CAUSALITY``'s.

        Cancelling the waiting task still waits until the unit is on top (R32), then raises;
        ``on_cancel`` runs at once, when the cancel comes while ``fut`` is awaited: what the
        cancel does to COM state (a call cancelled, R32) does not wait for the units above.

        Raises:
            CancelledError: the waiting task was cancelled (once its unit is on top).
        """
        w = self._wait_begins(WHERE.get(), kind, causality_id if causality_id is not None
                              else WAIT_CAUSALITY.get(), payload)
        if w is None:
            return await plain_wait(fut, timeout, on_cancel)
        handle = None
        if timeout is not None:
            handle = self._loop.call_later(timeout, settle, fut, False)
        cancelled: BaseException | None = None
        result: Any = False
        try:
            result = await fut
        except asyncio.CancelledError as exc:
            cancelled = exc
            if on_cancel is not None:
                on_cancel()
        finally:
            if handle is not None:
                handle.cancel()
        if not self._wait_ready(w):
            cancelled = await self._wait_for_top(w, cancelled)
        if cancelled is not None:
            raise cancelled
        return result

    # com_wait in three synchronous-first pieces, so that a synchronous call (the hot path)
    # need not make a coroutine for its wait:
    def _wait_begins(self, where: Where | None, kind: WaitKind, causality_id: int | None,
                     payload: Any) -> Wait | None:
        """A COM wait begins: an STA may start queued units meanwhile (R2). None: the waiter
        is no unit of this STA (the MTA, or code outside), so it simply waits."""
        sched = self._sched
        if sched is None or where is None or where.apartment is not self:
            return None
        unit = where.unit
        if unit is None or unit not in sched.stack:
            return None
        w, actions = sched.begin_wait(unit, kind, causality_id, payload)
        if actions:
            self._apply(actions)
        return w

    def _wait_ready(self, w: Wait) -> bool:
        """What ``w`` waited for has happened; True if its unit may go on at once (it is on
        top), False if it must first wait for the units above it to end (``_wait_for_top``)."""
        sched = self._sched
        assert sched is not None
        actions = sched.wait_ready(w)
        if actions:
            self._apply(actions)
        return w.ended

    async def _wait_for_top(self, w: Wait, cancelled: BaseException | None
                            ) -> BaseException | None:
        """Wait until ``w``'s unit is on top again (R2), and give back the cancellation to
        raise then: the one that came during the wait (R32: still resume only on top, shielded
        from an anyio scope's re-cancels), or one that comes meanwhile."""
        if cancelled is None:
            return await self._await_gate(w)
        with anyio.CancelScope(shield=True):
            await self._await_gate(w)
        return cancelled

    async def _await_gate(self, w: Wait) -> BaseException | None:
        """Wait until ``w``'s unit is on top again (R2). A cancellation meanwhile is kept and
        given back (the caller raises it once the unit is on top), except at shutdown.

        Once a cancellation has come, the rest of the wait is shielded: an anyio scope that
        expired re-cancels its task at every loop turn, and waiting on unshielded would spin
        (and freeze virtual time) until the units above have ended."""
        caught: BaseException | None = None
        while not w.ended:
            w.gate = self._loop.create_future()
            try:
                if caught is None:
                    await w.gate
                else:
                    with anyio.CancelScope(shield=True):
                        await w.gate
            except asyncio.CancelledError as exc:
                if self._closing:
                    raise
                caught = exc
        return caught

