"""Where code runs: one context variable holding the apartment, unit, call and thread."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from .._core.constants import ApartmentType
from .._core.sta import Unit


class Where(NamedTuple):
    """What code running in an apartment needs to know about itself (immutable).

    This module sits below every other of the runtime, so it names their classes in comments
    only: ``runtime`` is a ``runtime.Runtime``, ``apartment`` an ``apartment.Apartment``.
    """

    runtime: Any
    apartment: Any
    unit: Unit | None
    incoming: Any  # the incoming call being handled, or None
    causality_id: int | None
    thread_id: int


class Client(Protocol):
    """The client side of a call (``record.ClientCall.client``): where its replies are taken
    in, and its call object's steps run (R12, R18, R25). An apartment (an STA or the MTA; for
    NA code, the one under it, R5), or for NA code entered from no apartment a
    ``neutral.OutsideHost``, the caller's own loop. Each has all of this; nothing else of a
    call's client is read (``apartment.Apartment``'s own docstrings say what each does)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> ApartmentType: ...  # NA for a ``neutral.OutsideHost``

    @property
    def _rt(self) -> Any: ...  # ``runtime.Runtime``

    @property
    def _loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def _ident(self) -> int | None: ...  # the OS thread running its loop

    @property
    def _home(self) -> Where | None: ...

    @property
    def _accepting(self) -> bool: ...  # it takes messages in (until its shutdown begins, R18)

    @property
    def _closing(self) -> bool: ...  # its teardown has begun (R18)

    @property
    def _closed(self) -> bool: ...  # ... and ended: it takes in nothing more, ever

    @property
    def _at_close(self) -> dict[Any, Callable[[], None]]: ...  # what ends with it, by key

    @property
    def _tasks(self) -> dict[asyncio.Task[Any], Any] | None: ...  # its teardown ends them

    def _post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """``fn(*args)`` on its loop, through the transport; False: it takes in nothing
        more."""

    def _run_at_close(self, key: Any, fn: Callable[[], None]) -> bool:
        """Once ``_post`` was refused: ``fn()`` at the end of its teardown, on its loop; False
        once that has ended (``fn`` may then run on the caller's thread)."""


def step_on_client(client: Client, key: Any, fn: Callable[[], None]) -> bool:
    """``fn()`` on ``client``'s loop, in order with the replies it takes in: posted, or once
    its shutdown refuses messages, at the end of its teardown (``_run_at_close``). False once
    that has ended: nothing of the client runs any more, and the caller runs ``fn`` itself."""
    return client._post(fn) or client._run_at_close(key, fn)


def on_client_thread(client: Client) -> bool:
    """The running code is on ``client``'s (simulated) thread: in it, or NA code entered from
    it (R5); for a ``neutral.OutsideHost`` client, code in no apartment on its loop. Not a
    question of loops: on the deterministic runtime every apartment shares one."""
    w = WHERE.get()
    if w is not None and w.apartment._neutral:
        w = UNDER.get()  # NA code runs on the thread that entered it
    if w is not None:
        return w.apartment is client
    if client.type is not ApartmentType.NA:
        return False
    try:
        return client._loop is asyncio.get_running_loop()
    except RuntimeError:  # no loop runs here (a plain thread)
        return False


#: ``Where`` from a tuple of its six fields, without a Python ``__new__`` (the hot path's)
new_where: Callable[[tuple[Any, ...]], Where] = functools.partial(tuple.__new__, Where)

WHERE: contextvars.ContextVar[Where | None] = contextvars.ContextVar("comsim_where", default=None)
#: the runtime entered by code outside any apartment (set by ``Runtime.__aenter__``)
OUTER_RUNTIME: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "comsim_runtime", default=None
)
#: code in the neutral apartment (R5): the ``Where`` of the code whose thread entered it (None
#: when code in no apartment entered it). Read only while ``WHERE`` names the NA: waits made by
#: NA code are waits of this thread (``neutral.NeutralApartment.com_wait``).
UNDER: contextvars.ContextVar[Where | None] = contextvars.ContextVar("comsim_under",
                                                                    default=None)



def note_task(task: asyncio.Task[Any], context: contextvars.Context | None) -> None:
    """A task made by code in an apartment (``asyncio.create_task`` in a unit; ``context``: the
    one given to run it in) on the deterministic runtime, where every apartment shares one
    loop: noted in the apartment's ``_spawned``, so that its teardown ends it (R18). NA code's
    tasks are its thread's (R5)."""
    w = WHERE.get() if context is None else context.get(WHERE)
    if w is not None and w.apartment._neutral:
        w = UNDER.get() if context is None else context.get(UNDER)
    if w is not None:
        apt: Any = w.apartment
        if not hasattr(apt, "_spawned"):
            return  # not an apartment with a teardown
        spawned = apt._spawned
        if spawned is None:
            spawned = apt._spawned = weakref.WeakSet()
        spawned.add(task)


_outside_ids: dict[int, int] = {}
_outside_counter = itertools.count(1_000_001)
_outside_lock = threading.Lock()


def outside_thread_id() -> int:
    """R31: code outside any apartment runs on one simulated thread per OS thread."""
    ident = threading.get_ident()
    tid = _outside_ids.get(ident)
    if tid is None:
        with _outside_lock:
            tid = _outside_ids.setdefault(ident, next(_outside_counter))
    return tid


def current_runtime() -> Any:
    w = WHERE.get()
    return w.runtime if w is not None else OUTER_RUNTIME.get()


#: the runtimes entered and not yet closed, oldest first (``runtime_with_thread``)
LIVE_RUNTIMES: list[Any] = []


def runtime_with_thread(thread_id: int) -> Any:
    """R31: the runtime in which simulated thread ``thread_id`` has a pending outgoing call:
    the caller's own runtime first, then any live one (oldest first). This lets code on a
    plain OS thread, which knows no runtime, cancel an apartment thread's call."""
    own = current_runtime()
    if own is not None and own._outgoing.get(thread_id):
        return own
    for rt in list(LIVE_RUNTIMES):
        if rt._outgoing.get(thread_id):
            return rt
    return own
