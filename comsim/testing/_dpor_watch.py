"""What a delivery touches besides its receiver: the runtime's state that apartments share,
seen through the locks that guard it.

Deliveries to different apartments do not always commute: a cancel decides against the stage
the server's side of the call wrote (R29), a stub's references are counted from every
apartment (R7), the GIT and ISynchronize events are free-threaded. The runtime guards every
such state with a lock, for its threaded transport; while exhaustive exploration runs, those
locks (the ``threading`` locks of ``comsim._runtime``'s modules and of each ``Runtime``) are
wrapped so that each acquisition is noted: the variable ``(tag, sub)``, where ``tag`` names the
lock and ``sub`` is what the acquiring function works on: under the stubs' lock, the stub in
its local ``stub`` (or ``self.stub``, or its call's stub), a variable of the stub's apartment;
under another lock, the call in its local ``call``, a variable of the call's client and server
apartments; else None (the lock as a whole, which conflicts with every variable of that
lock). The wrappers only note; they lock as the locks do.

Some shared state is used without a lock, and when a check fails no lock is taken at all: a
stub's connection (``Stub.conn``), which a caller checks before it sends a request, and a proxy
passed in an argument or result before it takes a reference (R17; ``GetInterfaceFromGlobal``
and every other route in read it under the stubs' lock, with their claim and their reference:
``objref._connect``, R10, R34);
a proxy manager's count (``ProxyManager.count``), which a call through a proxy, its R12 checks
and ``QueryInterface`` read, and which ``Release`` changes from any apartment (R12, R34); a
call object's count (``CallObject._refs``), which ``AddRef`` changes without a lock and
``QueryInterface`` reads, while ``Release`` may come from any thread (R25); a thread's pending
synchronous calls (``Runtime._outgoing``), which ``CoCancelCall`` reads from any apartment
(R31). While exploring, those fields are descriptors (``Noted``, listed in ``FIELDS``) that
note each use, a variable of the object's apartments; a runtime's ``_outgoing`` is an
``Outgoing``, which notes the apartment of each thread looked up; a call's ``machine``, which
``CoCancelCall`` reads and a synchronous call reads as it ends (leaving its thread's stack), is
a variable of its client apartment's pending calls too. A stub's connection is read by every
call to it: its reads are noted apart (``(CONN_READ, apartment)``; a write: ``(CONN,
apartment)``), and two reads do not conflict (``READ_OF``, ``COMMUTE``), so that two callers
of one object still commute; so does a request's hold on the stub, taken as it is sent, with
every other use of the stubs' lock (``STUBS_SEND``). The other fields are
used by their own apartment but for those cross-apartment uses: each use is noted as a write.
An apartment's flags (``_accepting``: ``alive``, whether posting to it succeeds) need no note:
a delivery during which they change is a barrier (``_dpor``), dependent on every other.
Outside exploration the fields are plain attributes: nothing is noted, nothing is called.

Besides, which tasks wait in ``wait_all_tasks_blocked`` (``waiting_tasks``): code that polls
the loop so, and does nothing else until it returns, may run beside a delivery.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from .._runtime.callobj import CallObject
from .._runtime.context import UNDER, WHERE
from .._runtime.proxy import ProxyManager
from .._runtime.record import ClientCall
from .._runtime.stubs import Stub
from ._loop import wait_all_tasks_blocked

Variable = tuple[str, Hashable]
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_local = threading.local()
_install_lock = threading.Lock()
#: (module or class, name, what it held): the locks and fields replaced while exploring
_installed: list[tuple[Any, str, Any]] = []
_users = [0]
#: the variable of the connections of an apartment's stubs (``Noted``), and its reads
CONN = "comsim._runtime.stubs.Stub.conn"
CONN_READ = CONN + ":read"
#: the stubs' lock (``stubs._stub_lock``, under whichever module's name it was wrapped), and its
#: use by a request counted as it is sent (``record.holds``), which commutes with every other
#: apartment's use while the stub has a strong reference (its sender's proxy manager's, all
#: through the delivery that sends): the count it adds to cannot then decide, before or after
#: another apartment's step, whether the stub goes (R7)
STUBS = "comsim._runtime.stubs._stub_lock"
STUBS_SEND = STUBS + ":send"
#: the functions whose stubs' lock use is noted as ``STUBS_SEND`` (``client.sync_call`` takes
#: the stubs' lock only for its ``holds``, written out)
_STUB_USES = {"holds": STUBS_SEND, "sync_call": STUBS_SEND}
#: variables noted apart -> the variable they are uses of: a use conflicts with its variable's
#: other notes, but not with a use it commutes with (``COMMUTE``)
READ_OF = {CONN_READ: CONN}
COMMUTE = {(CONN_READ, CONN_READ), (STUBS_SEND, STUBS_SEND)}


class Watched:
    """A lock that notes each acquisition in this thread's ``noting`` (if any)."""

    __slots__ = ("lock", "tag")

    def __init__(self, lock: Any, tag: str) -> None:
        self.lock = lock
        self.tag = tag

    def __enter__(self) -> bool:
        self.lock.acquire()
        note = getattr(_local, "note", None)
        if note is not None:
            note(_variable(self.tag, sys._getframe(1)))
        return True

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = bool(self.lock.acquire(blocking, timeout))
        note = getattr(_local, "note", None)
        if got and note is not None:
            note(_variable(self.tag, sys._getframe(1)))
        return got

    def release(self) -> None:
        self.lock.release()

    def locked(self) -> bool:
        return bool(self.lock.locked())


def _variable(tag: str, frame: FrameType) -> Variable:
    local = frame.f_locals
    call = local.get("call")
    if not isinstance(call, ClientCall):
        call = None
    if tag.endswith("stub_lock"):  # a stub's references and calls: of the stub's apartment
        stub = local.get("stub")
        if not isinstance(stub, Stub):
            stub = getattr(local.get("self"), "stub", None)
        if not isinstance(stub, Stub) and call is not None:
            stub = call.stub
        use = _STUB_USES.get(frame.f_code.co_name, STUBS)
        if use == STUBS_SEND and not (isinstance(stub, Stub) and stub.life.strong):
            use = STUBS  # a resend (R16) after the last strong reference went: it may decide
        return (use, stub.apartment.name if isinstance(stub, Stub) else None)
    if call is not None:
        return (tag, (call.client.name, call.server.name))
    return (tag, None)


class _InDict:
    """An attribute kept in its object's ``__dict__`` (what a ``Noted`` field of a class
    without slots wraps)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


class Noted:
    """A field while exploring: the attribute (``slot``), each use noted in this thread's
    ``noting`` as ``(read, key(obj))`` or ``(write, key(obj))``. The first write (the object
    being made) is not: no one can have used it yet."""

    __slots__ = ("key", "read", "slot", "write")

    def __init__(self, slot: Any, write: str, read: str,
                 key: Callable[[Any], Hashable]) -> None:
        self.slot = slot
        self.write = write
        self.read = read
        self.key = key

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value = self.slot.__get__(obj, owner)
        note = getattr(_local, "note", None)
        if note is not None:
            note((self.read, self.key(obj)))
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        try:
            self.slot.__get__(obj, type(obj))
        except AttributeError:  # being made
            self.slot.__set__(obj, value)
            return
        self.slot.__set__(obj, value)
        note = getattr(_local, "note", None)
        if note is not None:
            note((self.write, self.key(obj)))


#: the variable of an apartment's threads' pending synchronous calls (``Outgoing``)
OUTGOING = "comsim._runtime.runtime.Runtime._outgoing"


class Outgoing(dict[int, list[Any]]):
    """A runtime's ``_outgoing`` (thread id -> its pending synchronous calls) while exploring:
    each look-up notes ``(OUTGOING, the thread's apartment)``; a thread not known to be an
    apartment's, ``(OUTGOING, None)`` (every apartment's)."""

    def __init__(self, rt: Any, calls: dict[int, list[Any]]) -> None:
        super().__init__(calls)
        self.rt = rt
        self.names: dict[int, str] = {}  # thread id -> its apartment's name

    def _note(self, tid: Any) -> None:
        note = getattr(_local, "note", None)
        if note is None:
            return
        name = self.names.get(tid)
        if name is None:
            for apt in self.rt.apartments:
                if apt.thread_id == tid:
                    name = apt.name
            w = UNDER.get() or WHERE.get()  # the thread a call is made on (R5: under NA code)
            if name is None and w is not None and w.thread_id == tid:
                name = w.apartment.name  # an MTA call's own thread
            if name is not None:
                self.names[tid] = name
        note((OUTGOING, name))

    def get(self, tid: Any, default: Any = None) -> Any:
        self._note(tid)
        return super().get(tid, default)

    def __getitem__(self, tid: Any) -> list[Any]:
        self._note(tid)
        return super().__getitem__(tid)

    def __setitem__(self, tid: Any, calls: list[Any]) -> None:
        self._note(tid)
        super().__setitem__(tid, calls)

    def __contains__(self, tid: object) -> bool:
        self._note(tid)
        return super().__contains__(tid)

    def pop(self, tid: Any, *default: Any) -> Any:
        self._note(tid)
        return super().pop(tid, *default)

    def setdefault(self, tid: Any, default: Any = None) -> Any:
        self._note(tid)
        return super().setdefault(tid, default)


def _count_key(mgr: ProxyManager) -> Hashable:
    return (mgr.apartment.name, mgr.stub.apartment.name)


#: the fields used without a lock across apartments: (class, attribute, write variable, read
#: variable, the variable's key: apartment names, stable across runs)
FIELDS: tuple[tuple[type, str, str, str, Callable[[Any], Hashable]], ...] = (
    (Stub, "conn", CONN, CONN_READ, lambda stub: stub.apartment.name),
    (ProxyManager, "count", "comsim._runtime.proxy.ProxyManager.count",
     "comsim._runtime.proxy.ProxyManager.count", _count_key),
    (CallObject, "_refs", "comsim._runtime.callobj.CallObject._refs",
     "comsim._runtime.callobj.CallObject._refs",
     lambda obj: obj.__dict__["_proxy"]._apartment.name),
    (ClientCall, "machine", OUTGOING, OUTGOING, lambda call: call.client.name),
)


def conflict(a: frozenset[Variable], b: frozenset[Variable]) -> bool:
    """Whether two footprints share a variable (a whole lock shares every one of its own),
    uses of one that commute (``COMMUTE``: two reads, two sends) aside."""
    for tag, sub in a:
        for tag2, sub2 in b:
            if sub is not None and sub2 is not None and sub != sub2:
                continue
            if READ_OF.get(tag, tag) == READ_OF.get(tag2, tag2) and (tag, tag2) not in COMMUTE:
                return True
    return False


@contextmanager
def watching() -> Iterator[None]:
    """Wrap the locks of ``comsim._runtime``'s modules, and the ``FIELDS`` (``Noted``), while
    the block runs (nested and concurrent blocks share the wrapping; the last one out restores
    them)."""
    with _install_lock:
        if not _users[0]:
            for cls, attr, write, read, key in FIELDS:
                held = vars(cls).get(attr)  # a slot, or nothing: in the object's ``__dict__``
                _installed.append((cls, attr, held))
                setattr(cls, attr, Noted(held or _InDict(attr), write, read, key))
            wrapped: dict[int, Watched] = {}
            for mod_name, module in list(sys.modules.items()):
                if not mod_name.startswith("comsim._runtime") or module is None:
                    continue
                for name, value in list(vars(module).items()):
                    if isinstance(value, _LOCK_TYPES):
                        w = wrapped.setdefault(id(value), Watched(value, f"{mod_name}.{name}"))
                        _installed.append((module, name, value))
                        setattr(module, name, w)
        _users[0] += 1
    try:
        yield
    finally:
        with _install_lock:
            _users[0] -= 1
            if not _users[0]:
                for owner, name, value in reversed(_installed):
                    if value is None:
                        delattr(owner, name)
                    else:
                        setattr(owner, name, value)
                _installed.clear()


def watch_runtime(rt: Any) -> None:
    """Wrap the locks a runtime holds (its own, its GIT's), and its ``_outgoing``."""
    rt._outgoing = Outgoing(rt, rt._outgoing)
    for owner, prefix in ((rt, "rt"), (getattr(rt, "git", None), "rt.git")):
        if owner is None:
            continue
        for name, value in list(vars(owner).items()):
            if isinstance(value, _LOCK_TYPES):
                setattr(owner, name, Watched(value, f"{prefix}.{name}"))


def noting(note: Callable[[Variable], None] | None) -> None:
    """Send this thread's noted acquisitions to ``note`` (None: nowhere)."""
    _local.note = note


_WAIT = wait_all_tasks_blocked.__code__


def still_waiting(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` waits in ``wait_all_tasks_blocked`` (its coroutine, or one it awaits,
    is that function's)."""
    if task.done():
        return False
    coro: Any = task.get_coro()
    while coro is not None:
        if getattr(coro, "cr_code", None) is _WAIT:
            return True
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return False


def waiting_tasks(loop: Any) -> list[asyncio.Task[Any]]:
    """The tasks of ``loop`` waiting in ``wait_all_tasks_blocked``, when they are all that
    is ready to run (each has one step ready: it polls); else none. Such a task reads nothing
    but whether the loop is quiet, and returns only once it is and no message is pending."""
    tasks = [t for t in asyncio.all_tasks(loop) if still_waiting(t)]
    return tasks if tasks and len(tasks) == loop.ready_count() else []
