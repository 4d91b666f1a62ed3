"""Free-threaded events: ``StdEvent`` and ``ManualResetEvent`` (R23)."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from .._core import hresult as hr
from .._core import rules
from .._core.event import End, EventState
from .._core.hresult import COMError
from .._core.refcount import RefCount
from .._core.text import safe_repr
from . import futures
from .comwait import ComWaits
from .context import (
    WHERE,
    current_runtime,
)
from .futures import call_in_loop
from .objects import (
    ISynchronize,
    IUnknown,
    _check_interface,
)

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------- events (R23)
def _wake_future(fut: asyncio.Future[Any], event: _Event, resets: int) -> None:
    """A signal's wake-up reaches its waiter. ``resets``: the event's Reset count when the
    signal came; the waiter's future gets ``resets + 1`` (a true int: its ``Wait`` gives
    ``S_OK``, or hands the signal back with that count if it ends otherwise)."""
    if fut.done():  # the waiter gave up meanwhile: its signal may go back (core: HANDS_BACK)
        event._woken_ends(End.LATE, resets)
        return
    fut.set_result(resets + 1)


_EVENTS_LOCK = threading.Lock()


class _Event(ISynchronize):
    """A free-threaded event: usable from any apartment, passed by reference."""

    _com_kind_ = "event"
    _com_free_threaded_ = True

    def __init__(self, auto_reset: bool) -> None:
        self._state = EventState(auto_reset)
        self._lock = _EVENTS_LOCK  # events are free-threaded; no lock is made per event
        self._refs = RefCount()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'set' if self._state.is_set else 'clear'}>"

    def Signal(self) -> int:
        """Set the event, waking waiters (one, for an auto-reset event)."""
        with self._lock:
            wake = self._state.signal()
            resets = self._state.resets
        if wake:
            self._wake(wake, resets)
        return hr.S_OK

    def _wake(self, wake: list[Any], resets: int) -> None:
        """Send the wake-ups of the waiters ``wake`` (``EventState`` chose them for a signal
        that came when the event's Reset count was ``resets``)."""
        late = 0
        for loop, fut, apartment, transport, _w, _t in wake:
            # through the transport (the seed and latency govern it): to the waiter's
            # apartment, or to its loop when it waits outside any
            if apartment is not None:
                if transport.signal(apartment, _wake_future, (fut, self, resets)):
                    continue
            elif transport is not None and not loop.is_closed():
                transport.to_loop(loop, _wake_future, (fut, self, resets))
                continue
            if loop.is_closed():  # the waiter's loop is gone, and the waiter with it
                late += 1
                continue
            # no runtime, or the apartment is gone
            call_in_loop(loop, _wake_future, fut, self, resets)
        for _ in range(late):
            self._woken_ends(End.LATE, resets)

    def _woken_ends(self, end: End, resets: int) -> None:
        """A waiter that a signal woke ended so: carry out the core's answer (``HANDS_BACK``:
        an auto-reset event's signal nobody took goes back to the event, unless it was reset
        since). ``resets``: the Reset count when that signal came."""
        with self._lock:
            wake = self._state.woken_ends(end, resets)
            now = self._state.resets
        if wake:
            self._wake(wake, now)

    def Reset(self) -> int:
        with self._lock:
            self._state.reset()
        return hr.S_OK

    def is_set(self) -> bool:
        return self._state.is_set

    async def Wait(self, flags: int, milliseconds: int) -> int:
        """S_OK once signalled, RPC_S_CALLPENDING on time-out (0 polls; INFINITE waits).
        In an apartment this is a COM wait (R23).

        Raises:
            COMError(E_INVALIDARG): a negative time-out other than INFINITE.
        """
        # (this coroutine's frame lives as long as the wait: its locals are few)
        entry = self._wait_begins(milliseconds)
        if type(entry) is int:
            return entry
        try:
            w = entry[4]
            if w is None:
                ok = await futures.wait(entry[1], entry[5])
            elif (entry[5] is None and type(w.apartment).com_wait is ComWaits.com_wait
                  and w.apartment._sched is None):
                # ``ComWaits.com_wait`` in an apartment with no STA scheduler (the MTA) and no
                # time-out, written out: it is ``await fut``, with no coroutine made for it
                ok = await entry[1]
            else:
                ok = await w.apartment.com_wait(entry[1], timeout=entry[5])
        except BaseException:
            fut = entry[1]  # woken, then cancelled before Wait returned: S_OK is not given
            if fut.done() and not fut.cancelled() and type(woke := fut.result()) is int:
                self._woken_ends(End.ABANDONED, woke - 1)  # (``_wake_future``'s resets + 1)
            raise
        finally:
            with self._lock:
                self._state.remove_waiter(entry)
        return hr.S_OK if ok else hr.RPC_S_CALLPENDING

    def _wait_begins(self, milliseconds: int) -> Any:
        """A wait's answer now (an HRESULT), or the waiter it adds: (loop, future, apartment to
        signal, transport, ``Where``, time-out)."""
        try:
            timeout = rules.wait_timeout(milliseconds)
        except ValueError as exc:
            raise COMError(hr.E_INVALIDARG,
                           f"Wait(..., {safe_repr(milliseconds)}): {exc}") from None
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._state.try_wait():
                return hr.S_OK
            if timeout == 0:
                return hr.RPC_S_CALLPENDING
            w = WHERE.get()
            rt = w.runtime if w is not None else current_runtime()
            apt = w.apartment if w is not None else None
            if apt is not None and apt._neutral:  # R5: the signal goes to the thread under it
                apt = apt.loop_apartment()
            entry = (loop, loop.create_future(), apt,
                     rt._transport if rt is not None else None, w, timeout)
            self._state.add_waiter(entry)
        return entry

    def QueryInterface(self, iface: type[Any]) -> Any:
        iface = _check_interface(iface)
        if iface in (ISynchronize, IUnknown):
            self.AddRef()
            return self
        raise COMError(hr.E_NOINTERFACE, f"{type(self).__name__} has no {iface.__name__}")

    def AddRef(self) -> int:
        return self._refs.add()

    def Release(self) -> int:
        return self._refs.release()

    def __reduce__(self) -> Any:  # pragma: no cover - passed by reference, never pickled
        raise TypeError("events pass by reference")


class StdEvent(_Event):
    """An auto-reset event: a successful wait resets it (R23)."""

    def __init__(self) -> None:
        super().__init__(auto_reset=True)


class ManualResetEvent(_Event):
    """A manual-reset event: it stays set until ``Reset()`` (R23)."""

    def __init__(self) -> None:
        super().__init__(auto_reset=False)
