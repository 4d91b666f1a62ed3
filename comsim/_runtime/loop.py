"""The threaded runtime's apartment loops: lazy polls while busy, one read per wake-up, and a
wake-up that makes no handle per message."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import selectors
from collections.abc import Callable
from typing import Any

__all__ = ["ApartmentLoop", "BusyLoopSelector"]


class BusyLoopSelector(selectors.BaseSelector):
    """An apartment loop's selector. While callbacks are ready to run, the loop asks the OS for
    I/O only every 16th turn: a turn with nothing to poll is a system call saved, twice per
    call. Messages from other apartments do not wait for it (their wake-up puts the inbox's
    handler straight on the ready queue); only real I/O done by user code may wait up to 15
    turns of a busy loop. With nothing ready, the loop waits for I/O as usual."""

    def __init__(self, real: selectors.BaseSelector) -> None:
        self._real = real
        self._turns = 0

    def select(self, timeout: float | None = None
               ) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            self._turns += 1
            if self._turns & 15:
                return []
        self._turns = 0
        return self._real.select(timeout)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class ApartmentLoop(asyncio.SelectorEventLoop):
    """A threaded apartment's loop: a selector loop that polls lazily while busy
    (``BusyLoopSelector``) and reads its wake-up pipe once per wake-up.

    asyncio reads the pipe until a read would block: a second system call, and an exception
    raised and caught, on every wake-up, and an apartment is woken once per message. One read
    takes up to 4096 wake-up bytes; any left over make the pipe ready again at the next poll,
    which reads them then.
    """

    def __init__(self) -> None:
        super().__init__(BusyLoopSelector(selectors.DefaultSelector()))

    def _read_from_self(self) -> None:
        try:
            data = self._ssock.recv(4096)  # type: ignore[attr-defined]
        except (InterruptedError, BlockingIOError):
            return
        if data:
            self._process_self_data(data)  # type: ignore[attr-defined]

    def waker(self, callback: Callable[[], Any], context: contextvars.Context
              ) -> Callable[[], object]:
        """A function that has ``callback`` run on this loop, callable from any thread: what
        ``call_soon_threadsafe(callback, context=context)`` does, with one handle made here
        instead of one per call. Each call runs ``callback`` once more."""
        ready = getattr(self, "_ready", None)  # asyncio's queue of ready callbacks
        send = getattr(getattr(self, "_csock", None), "send", None)  # the wake-up pipe
        if ready is None or send is None:  # pragma: no cover - an asyncio without them
            return functools.partial(self.call_soon_threadsafe, callback, context=context)
        handle = asyncio.Handle(callback, (), self, context)

        def wake() -> None:
            ready.append(handle)  # as call_soon_threadsafe does: a deque takes it atomically
            try:
                send(b"\0")
            except OSError:  # the pipe is full (the loop wakes all the same), or it has closed
                pass

        return wake
