"""The threaded runtime's apartment loops and inboxes.

Loops poll the OS for I/O only every 16th turn while callbacks are ready (``BusyLoopSelector``):
messages never wait for it, real I/O waits at most 15 turns of a busy loop. A wake-up costs one
read of the loop's wake-up pipe (``ApartmentLoop``). Inboxes take no lock, and lose no message
when shutdown begins while one is posted."""

from __future__ import annotations

import asyncio
import collections
import selectors
import socket
from typing import Any

import pytest

import comsim
from comsim._runtime.loop import ApartmentLoop, BusyLoopSelector


class _Counting(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def select(self, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        return super().select(0)


class _CountingSocket:
    """Wraps the loop's reading end of its wake-up pipe and counts reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reads = 0

    def recv(self, n: int) -> bytes:
        self.reads += 1
        return self.sock.recv(n)


def test_a_wake_up_reads_the_pipe_once_and_leaves_nothing_behind() -> None:
    loop = ApartmentLoop()
    try:
        counting = _CountingSocket(loop._ssock)  # type: ignore[attr-defined]
        loop._ssock = counting  # type: ignore[attr-defined]
        loop._write_to_self()  # type: ignore[attr-defined]
        loop._read_from_self()
        assert counting.reads == 1  # asyncio's own reads until the read would block: 2
        loop._read_from_self()  # nothing there: no error
        assert counting.reads == 2
        for _ in range(5000):  # more wake-ups than one read takes
            loop._write_to_self()  # type: ignore[attr-defined]
        loop._read_from_self()
        loop._read_from_self()  # the rest, as the next poll would find the pipe ready
        with pytest.raises(BlockingIOError):
            counting.sock.recv(1)  # nothing is left behind
        assert counting.reads == 4
        loop._ssock = counting.sock  # type: ignore[attr-defined]
    finally:
        loop.close()


def test_an_apartment_loop_takes_in_a_burst_of_wake_ups_and_then_waits() -> None:
    import threading

    loop = ApartmentLoop()
    seen: list[int] = []

    async def main() -> int:
        burst_done: asyncio.Future[None] = loop.create_future()

        def poster() -> None:
            for i in range(6000):  # a burst from another thread: more than one read takes
                loop.call_soon_threadsafe(seen.append, i)
            loop.call_soon_threadsafe(burst_done.set_result, None)

        t = threading.Thread(target=poster)
        t.start()
        await burst_done
        t.join()
        # what one read left behind is read at the next polls, so that a loop with nothing
        # ready blocks instead of finding its pipe ready again and again
        turns = 0
        while loop._selector._real.select(0):  # type: ignore[attr-defined]
            await asyncio.sleep(0)
            turns += 1
            assert turns < 1000
        return turns

    try:
        assert loop.run_until_complete(main()) < 1000
        assert seen == list(range(6000))
    finally:
        loop.close()


def test_a_waker_runs_its_callback_once_per_wake_from_any_thread() -> None:
    import contextvars
    import threading

    loop = ApartmentLoop()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="unset")
    ctx = contextvars.Context()
    ctx.run(var.set, "apartment")
    seen: list[str] = []

    async def main() -> None:
        done: asyncio.Future[None] = loop.create_future()

        def callback() -> None:
            seen.append(var.get())  # runs in the context it was given
            if len(seen) == 3:
                done.set_result(None)

        wake = loop.waker(callback, ctx)
        t = threading.Thread(target=lambda: [wake() for _ in range(3)])
        t.start()
        await done
        t.join()

    late = loop.waker(lambda: seen.append("late"), ctx)
    try:
        loop.run_until_complete(main())
        assert seen == ["apartment"] * 3
    finally:
        loop.close()
    late()  # its loop has closed: nothing runs, nothing raises
    assert seen == ["apartment"] * 3


def test_polls_every_16th_busy_turn_and_whenever_the_loop_would_wait() -> None:
    real = _Counting()
    sel = BusyLoopSelector(real)
    try:
        for _ in range(32):
            assert sel.select(0) == []
        assert real.timeouts == [0, 0]  # turns 16 and 32
        sel.select(0.25)  # nothing ready: the loop waits for I/O or its next timer
        sel.select(None)
        assert real.timeouts == [0, 0, 0.25, None]
    finally:
        sel.close()


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_real_io_reaches_a_busy_apartment(rt: comsim.Runtime) -> None:  # R2
    """A method reads a socket while another task of its loop never lets the loop go idle:
    the data still arrives, and a timer still fires."""
    sta = await rt.create_sta("io")
    a, b = socket.socketpair()
    a.setblocking(False)

    async def read_while_busy() -> tuple[bytes, bool]:
        loop = asyncio.get_running_loop()
        stop = False

        async def spin() -> None:
            while not stop:
                await asyncio.sleep(0)  # always ready: the loop never waits

        spinner = loop.create_task(spin())
        b.send(b"ping")
        data = await loop.sock_recv(a, 4)
        timer = loop.create_future()
        loop.call_later(0.001, timer.set_result, True)
        fired = await timer
        stop = True
        await spinner
        return data, fired

    try:
        assert await sta.run(read_while_busy) == (b"ping", True)
    finally:
        a.close()
        b.close()


class _ShutdownDuringAppend(collections.deque[Any]):
    """An inbox in which shutdown begins just as a message goes in; with ``drained``, the
    teardown also takes the inbox in before the poster looks again."""

    def __init__(self, apt: comsim.Apartment, drained: bool) -> None:
        super().__init__()
        self.apt = apt
        self.drained = drained
        self.taken: list[Any] = []

    def append(self, item: Any) -> None:
        super().append(item)
        self.apt._accepting = False
        if self.drained:
            self.taken.append(self.popleft())


@pytest.mark.threaded_only
@pytest.mark.parametrize("drained", [False, True])
@pytest.mark.asyncio
async def test_a_message_posted_as_shutdown_begins_is_taken_back_or_taken_in(
        rt: comsim.Runtime, drained: bool) -> None:  # R18
    """No message is lost when shutdown begins while it is posted: either the poster takes it
    back (and reports the apartment gone), or the teardown has taken it in."""
    sta = await rt.create_sta("s")
    inbox = _ShutdownDuringAppend(sta, drained)
    real, sta._inbox = sta._inbox, inbox
    try:
        posted = sta._post(print, "never printed")
    finally:
        sta._inbox, sta._accepting = real, True
    if drained:
        assert posted is True and inbox.taken == [(print, ("never printed",))]
    else:
        assert posted is False and list(inbox) == []
