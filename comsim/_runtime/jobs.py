"""``Apartment.run``: work submitted to an apartment as a unit (R2); arguments and result pass
by reference; cancelling the caller cancels the unit and waits for it to end (R32)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import Any, TypeVar, overload

import anyio

from .._core import hresult as hr
from .._core import rules
from .._core.check import BadArgumentType
from .._core.hresult import COMError
from .._core.sta import (
    StaScheduler,
    Unit,
    UnitKind,
)
from .._core.text import safe_repr
from .context import WHERE, new_where
from .futures import settle

#: the runtime (``runtime.Runtime``, a module above this one)
Runtime = Any

T = TypeVar("T")


def shield(inner: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """``asyncio.shield(inner)`` for a future (the same on Python 3.11 to 3.13): the same outer
    future and the same two done callbacks, without ``ensure_future``'s frames."""
    if inner.done():
        return inner
    outer = inner.get_loop().create_future()

    def _inner_done_callback(inner: asyncio.Future[Any]) -> None:
        if outer.cancelled():
            if not inner.cancelled():
                inner.exception()  # mark inner's result as retrieved
            return
        if inner.cancelled():
            outer.cancel()
        else:
            exc = inner.exception()
            if exc is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(inner.result())

    def _outer_done_callback(outer: asyncio.Future[Any]) -> None:
        if not inner.done():
            inner.remove_done_callback(_inner_done_callback)

    inner.add_done_callback(_inner_done_callback)
    outer.add_done_callback(_outer_done_callback)
    return outer


class Serving:
    """A started server task's entry in ``Apartment._tasks`` (as a ``_Job`` is a run unit's):
    the call it runs, or ran last (a ``record.ClientCall``)."""

    __slots__ = ("call",)

    def __init__(self, call: Any) -> None:
        self.call = call


class _Job:
    """One ``Apartment.run`` unit."""

    __slots__ = ("args", "cancelled", "fn", "loop", "task", "unit", "waiter")

    def __init__(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                 loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.waiter = waiter
        self.task: asyncio.Task[Any] | None = None
        self.unit: Unit | None = None
        self.cancelled = False



class RunUnits:
    """The ``run`` part of ``apartment.Apartment`` (a mixin)."""

    __slots__ = ()

    # what the apartment (``apartment.Apartment``) has, for the type checker
    name: str
    thread_id: int
    _rt: Runtime
    _loop: asyncio.AbstractEventLoop
    _sched: StaScheduler | None
    _closing: bool

    _post: Callable[..., bool]
    _apply: Callable[[list[Any]], None]
    _end_unit: Callable[[Unit | None], None]
    _done: Callable[[], None]
    _spawn: Callable[[Any, Any], asyncio.Task[Any]]

    # ------------------------------------------------------------------ Apartment.run
    @overload
    async def run(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    @overload
    async def run(self, async_fn: Callable[..., T], *args: Any) -> T: ...

    async def run(self, async_fn: Callable[..., Any], *args: Any, _com_wait: bool = False
                  ) -> Any:
        """Run ``async_fn(*args)`` as a unit inside this apartment (R2) and give its result.

        Arguments and result pass by reference. From inside this apartment the function runs
        directly. Cancelling the caller cancels the unit and waits for it to end.

        Raises:
            COMError(RPC_E_DISCONNECTED): the apartment has shut down (R18).
            COMError(E_INVALIDARG), also a TypeError: ``async_fn`` is not callable.
            Whatever ``async_fn`` raises.
        """
        if not callable(async_fn):
            raise BadArgumentType(f"{self.name}.run({safe_repr(async_fn)}, ...): pass a function "
                                  "(async or plain) to run in the apartment")
        w = WHERE.get()
        if rules.runs_directly(w.apartment if w is not None else None, self):
            direct = async_fn(*args)
            return await direct if inspect.isawaitable(direct) else direct
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        job = _Job(async_fn, args, loop, waiter)
        if not self._post(self._on_run, job):
            raise self._gone_error()
        try:
            if _com_wait and w is not None:  # (comsim's own: R33 waits for cls() so, R2)
                # the waiter must outlive our cancel
                ok, value = await w.apartment.com_wait(shield(waiter))
            else:
                # a cancel of this task cancels ``waiter`` too (asyncio's rule): the unit's
                # outcome then goes to the job's next waiter (``_cancelled_waiter``)
                ok, value = await waiter
            value_t: Any = value
        except asyncio.CancelledError:
            job.cancelled = True
            waiter = _cancelled_waiter(job)
            self._post(self._cancel_job, job)
            # wait for the unit to end; shielded, so that an anyio scope does not re-cancel
            # us in a busy loop (which would also freeze virtual time)
            with anyio.CancelScope(shield=True):
                while not waiter.done():
                    try:
                        await asyncio.shield(waiter)
                    except asyncio.CancelledError:
                        continue
            raise
        if ok:
            return value_t
        raise value

    def _gone_error(self) -> COMError:
        return COMError(hr.RPC_E_DISCONNECTED,
                        f"apartment {self.name!r} has shut down; nothing more runs in it")

    def _on_run(self, job: _Job) -> None:
        if self._closing:
            self._settle_job(job, False, self._gone_error())
            return
        if job.cancelled:
            # the caller's cancel came first (the deterministic pump may deliver its
            # ``_cancel_job`` before this): the unit never starts (R32); queued, it could wait
            # behind the very unit whose code waits for its end
            self._settle_job(job, False, asyncio.CancelledError())
            return
        if self._sched is None:
            job.task = self._spawn(self._run_job(job, None), job)
        else:
            job.unit = Unit(UnitKind.RUN, job)
            self._apply(self._sched.arrive(job.unit))

    def _cancel_job(self, job: _Job) -> None:
        if job.task is not None:
            job.task.cancel()
        elif job.unit is not None and self._sched is not None and self._sched.withdraw(job.unit):
            self._settle_job(job, False, asyncio.CancelledError())

    async def _run_job(self, job: _Job, unit: Unit | None) -> None:
        rt = self._rt
        tid = self.thread_id if self._sched is not None else rt._new_thread_id()
        WHERE.set(new_where((rt, self, unit, None, None, tid)))
        try:
            if job.cancelled:
                raise asyncio.CancelledError
            result = job.fn(*job.args)
            # a plain function runs in the apartment too (``isawaitable``; a coroutine first)
            if type(result) is CoroutineType or inspect.isawaitable(result):
                result = await result
            outcome: tuple[bool, Any] = (True, result)
        except asyncio.CancelledError as exc:
            outcome = (False, self._gone_error() if self._closing else exc)
        except BaseException as exc:
            outcome = (False, exc)
        finally:
            self._end_unit(unit)
            self._done()
        self._settle_job(job, *outcome)

    def _settle_job(self, job: _Job, ok: bool, value: Any) -> None:
        # on the caller's loop (any thread), through the transport; dropped if it has closed
        self._rt._transport.to_loop(job.loop, _settle_waiter, (job, (ok, value)))


def _cancelled_waiter(job: _Job) -> asyncio.Future[Any]:
    """On the caller's loop: the future that takes the unit's outcome once the caller was
    cancelled. The cancel cancelled the waiter the caller awaited; a new one takes its place,
    unless the outcome came meanwhile (``_settle_waiter`` made it then)."""
    if job.waiter.cancelled():
        job.waiter = job.loop.create_future()
    return job.waiter


def _settle_waiter(job: _Job, outcome: tuple[bool, Any]) -> None:
    """On the caller's loop: the unit's outcome to the job's waiter; to a new one if a cancel
    of the caller cancelled it (the caller waits on that one until the unit has ended)."""
    settle(_cancelled_waiter(job), outcome)

