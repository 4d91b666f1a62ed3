"""The neutral apartment (R5): no thread and no loop of its own.

Code enters the NA on the caller's own loop and simulated thread (``NeutralApartment.enter``):
``WHERE`` names the NA, the thread id stays the caller's, and ``UNDER`` keeps the caller's own
``Where`` -- the thread under the NA. Whatever NA code needs of a loop (a future, a wait, a
reply to an outgoing call) is that thread's: a wait made by NA code on an STA's thread is a
COM wait of that STA, on the MTA or in no apartment it just waits. The NA runs under MTA
rules: no scheduler, no message filter.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import Any, TypeVar, overload

from .._core import hresult as hr
from .._core import rules
from .._core import stub as stubcore
from .._core.check import BadArgumentType
from .._core.constants import ApartmentType
from .._core.hresult import COMError
from .._core.sta import WaitKind
from .._core.text import safe_repr
from .comwait import plain_wait
from .context import UNDER, WHERE, Client, Where, outside_thread_id

#: the runtime (``runtime.Runtime``, a module above this one)
Runtime = Any
T = TypeVar("T")


class OutsideHost:
    """The loop under NA code that code in no apartment entered: the client side
    (``context.Client``) of the calls that NA code makes (replies come back to this loop; it
    just waits). It has no teardown: it takes in messages until its loop closes."""

    _neutral = False
    _sched = None
    _filter = None
    _closing = False
    _accepting = True
    _home: Where | None = None  # (read only for a call with no NA code behind it: never)
    _tasks = None  # no teardown ends the tasks of its calls
    type = ApartmentType.NA

    def __init__(self, nta: NeutralApartment, loop: asyncio.AbstractEventLoop) -> None:
        self.name = nta.name
        self._rt = nta._rt
        self._loop = loop
        self._ident: int | None = threading.get_ident()  # made by code running on ``loop``
        self.thread_id = 0
        self._at_close: dict[Any, Callable[[], None]] = {}
        self._new_future: Callable[[], asyncio.Future[Any]] = functools.partial(
            asyncio.Future, loop=loop)

    def new_future(self) -> asyncio.Future[Any]:
        return self._new_future()

    @property
    def _closed(self) -> bool:
        """Its loop has closed: nothing is taken in there any more."""
        return self._loop.is_closed()

    def _post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """``fn(*args)`` on the loop, through the transport; False once it has closed."""
        if self._loop.is_closed():
            return False
        self._rt._transport.to_loop(self._loop, fn, args)
        return True

    def _run_at_close(self, key: Any, fn: Callable[[], None]) -> bool:
        """False: ``_post`` refuses only once the loop has closed, and no teardown follows;
        ``fn`` runs on the caller's thread (``Apartment._run_at_close``)."""
        return False

    def _wait_begins(self, *_args: Any) -> None:
        return None  # no apartment under it: it just waits

    async def com_wait(self, fut: asyncio.Future[Any], kind: WaitKind = WaitKind.OTHER,
                       causality_id: int | None = None, payload: Any = None,
                       timeout: float | None = None,
                       on_cancel: Callable[[], None] | None = None) -> Any:
        return await plain_wait(fut, timeout, on_cancel)


class NeutralApartment:
    """The runtime's one neutral apartment, ``rt.nta`` (R5). Use ``rt.nta``; do not construct
    it. ``await rt.nta.run(fn, *args)`` runs ``fn`` in the NA on the caller's own thread."""

    _neutral = True
    _sched = None
    _filter = None
    type = ApartmentType.NA

    def __init__(self, runtime: Runtime) -> None:
        self.name = "NA"
        self._rt = runtime
        self.thread_id = 0  # the NA has no thread: code in it keeps the caller's
        self._accepting = True
        self._closing = False
        self._closed = False
        self._stubs: dict[int, Any] = {}
        self._at_close: dict[Any, Callable[[], None]] = {}
        self._home = Where(runtime, self, None, None, None, 0)
        self._outside: dict[asyncio.AbstractEventLoop, OutsideHost] = {}

    def __repr__(self) -> str:
        return f"<Apartment 'NA' NA {'running' if self._accepting else 'closed'}>"

    @property
    def alive(self) -> bool:
        """False once the runtime has ended (the NA ends only with it)."""
        return self._accepting

    # ------------------------------------------------------------------ entering (R5)
    def enter(self, where: Where | None, incoming: Any, causality_id: int | None
              ) -> tuple[Token[Where | None], Token[Where | None]]:
        """Make the NA current for the calling task, on its thread: give the tokens to
        ``leave``. ``where`` is the caller's own (None: no apartment)."""
        if where is not None and where.apartment is self:
            under = UNDER.get()
            tid = where.thread_id
        else:
            under = where
            tid = where.thread_id if where is not None else outside_thread_id()
        return (WHERE.set(Where(self._rt, self, None, incoming, causality_id, tid)),
                UNDER.set(under))

    @staticmethod
    def leave(tokens: tuple[Token[Where | None], Token[Where | None]]) -> None:
        WHERE.reset(tokens[0])
        UNDER.reset(tokens[1])

    @overload
    async def run(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    @overload
    async def run(self, async_fn: Callable[..., T], *args: Any) -> T: ...

    async def run(self, async_fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``async_fn(*args)`` in the NA, on the caller's own loop and simulated thread
        (R5): no thread switch, no queue, no COM wait; arguments and result by reference.
        Code in no apartment may enter too (choice).

        Raises:
            COMError(RPC_E_DISCONNECTED): the runtime has ended.
            COMError(E_INVALIDARG), also a TypeError: ``async_fn`` is not callable.
            Whatever ``async_fn`` raises.
        """
        if not callable(async_fn):
            raise BadArgumentType(f"NA.run({safe_repr(async_fn)}, ...): pass a function (async or "
                                  "plain) to run in the neutral apartment")
        if not self._accepting:
            raise self._gone_error()
        w = WHERE.get()
        if w is not None and w.apartment is self:
            tokens = None
        else:
            tokens = self.enter(w, None, w.causality_id if w is not None else None)
        try:
            result = async_fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            if tokens is not None:
                self.leave(tokens)

    def _gone_error(self) -> COMError:
        return COMError(hr.RPC_E_DISCONNECTED,
                        "the neutral apartment has ended with its runtime; nothing more runs "
                        "in it")

    # ------------------------------------------------------------------ the thread under it
    def loop_apartment(self) -> Any:
        """The apartment whose thread runs the calling NA code, or None (no apartment)."""
        under = UNDER.get()
        return under.apartment if under is not None else None

    def host(self) -> Client:
        """What the calling NA code's outgoing calls use as their client side: the apartment
        under it, or an ``OutsideHost`` for the caller's loop."""
        apt: Client | None = self.loop_apartment()
        if apt is not None:
            return apt
        loop = asyncio.get_running_loop()
        host = self._outside.get(loop)
        if host is None:
            host = self._outside[loop] = OutsideHost(self, loop)
        return host

    def new_future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    _new_future = new_future

    async def com_wait(self, fut: asyncio.Future[Any], kind: WaitKind = WaitKind.OTHER,
                       causality_id: int | None = None, payload: Any = None,
                       timeout: float | None = None,
                       on_cancel: Callable[[], None] | None = None) -> Any:
        """A wait made by NA code takes the kind of the thread under it (R5): on an STA's
        thread a COM wait of that STA, on the MTA or in no apartment a plain wait."""
        under = UNDER.get()
        if under is None:
            return await plain_wait(fut, timeout, on_cancel)
        token = WHERE.set(under)
        try:
            return await under.apartment.com_wait(fut, kind, causality_id, payload, timeout,
                                                  on_cancel)
        finally:
            WHERE.reset(token)

    def _post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """A message to the NA (a cancel for a ``Begin_`` call running in it): the NA has no
        loop, so it is taken in on the sender's own loop, through the transport."""
        if not self._accepting:
            return False
        self._rt._transport.to_loop(asyncio.get_running_loop(), fn, args)
        return True

    # ------------------------------------------------------------------ the end
    async def shutdown(self) -> None:
        """The NA ends only with its runtime (R5).

        Raises:
            COMError(E_FAIL): always, while the runtime runs.
        """
        code = rules.shutdown_allowed(self.type, self._rt._closing)
        if code:
            raise COMError(code, "the neutral apartment ends only with its runtime; leave the "
                                 "`async with Runtime()` block instead")
        self._end()

    def _end(self) -> None:
        """The runtime ends: the NA's objects are disconnected (R18)."""
        self._accepting = False
        self._closing = True
        for stub in list(self._stubs.values()):
            stub.conn = stubcore.Connection.DISCONNECTED
        self._stubs.clear()
        while self._at_close:
            _key, fn = self._at_close.popitem()
            fn()
        self._closed = True

