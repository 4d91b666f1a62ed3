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

from .._runtime.record import ClientCall
from .._runtime.stubs import Stub
from ._loop import wait_all_tasks_blocked

Variable = tuple[str, Hashable]
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_local = threading.local()
_install_lock = threading.Lock()
_installed: list[tuple[Any, str, Any]] = []  # (module, name, the lock it held)
_users = [0]


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
        return (tag, stub.apartment.name if isinstance(stub, Stub) else None)
    if call is not None:
        return (tag, (call.client.name, call.server.name))
    return (tag, None)


def conflict(a: frozenset[Variable], b: frozenset[Variable]) -> bool:
    """Whether two footprints share a variable (a whole lock shares every one of its own)."""
    for tag, sub in a:
        for tag2, sub2 in b:
            if tag == tag2 and (sub is None or sub2 is None or sub == sub2):
                return True
    return False


@contextmanager
def watching() -> Iterator[None]:
    """Wrap the locks of ``comsim._runtime``'s modules while the block runs (nested and
    concurrent blocks share the wrapping; the last one out restores the locks)."""
    with _install_lock:
        if not _users[0]:
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
                for module, name, value in _installed:
                    setattr(module, name, value)
                _installed.clear()


def watch_runtime(rt: Any) -> None:
    """Wrap the locks a runtime holds (its own, its GIT's)."""
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
