"""The threaded runtime's apartment loops and inboxes.

Loops poll the OS for I/O only every 16th turn while callbacks are ready (``BusyLoopSelector``):
messages never wait for it, real I/O waits at most 15 turns of a busy loop. Inboxes take no
lock, and lose no message when shutdown begins while one is posted."""

from __future__ import annotations

import asyncio
import collections
import selectors
import socket
from typing import Any

import pytest

import comsim
from comsim._runtime.runtime import BusyLoopSelector


class _Counting(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def select(self, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        return super().select(0)


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
