"""The threaded transport's wake-ups posted while a drain takes in a burst: each is sent as the
drain reaches its burst's last message, once, before that message runs; a wake-up posted from
the last message, or from outside a drain, is sent at once. No message is lost or reordered."""

from __future__ import annotations

import collections
import threading
from typing import Any

from comsim._runtime import threaded
from comsim._runtime.threaded import ThreadedTransport


class _Loop:
    def __init__(self) -> None:
        self.failures: list[dict[str, Any]] = []

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.failures.append(context)


class _Apt:
    """What the transport's poster and drain read of an apartment."""

    def __init__(self, name: str, ident: int | None, log: list[str]) -> None:
        self.name = name
        self._ident = ident
        self._inbox: collections.deque[Any] = collections.deque()
        self._woken = False
        self._deferred: list[Any] = []
        self._accepting = True
        self._loop = _Loop()
        self._ctx0 = None
        self._log = log
        self._post = ThreadedTransport()._poster(self)

    def _wake(self) -> None:
        self._log.append(f"wake {self.name}")


def _pair() -> tuple[_Apt, _Apt, list[str]]:
    log: list[str] = []
    here = _Apt("a", threading.get_ident(), log)  # drained on this thread
    there = _Apt("b", -1, log)  # another thread's
    return here, there, log


def test_a_wake_up_posted_in_a_burst_is_sent_once_before_its_last_message() -> None:
    a, b, log = _pair()

    def handle(i: int) -> None:
        log.append(f"start {i}")
        assert b._post(print, i) is True
        log.append(f"end {i}")

    for i in range(3):
        a._inbox.append((handle, (i,)))
    threaded._drain(a)
    assert log == ["start 0", "end 0", "start 1", "end 1", "wake b", "start 2", "end 2"]
    assert list(b._inbox) == [(print, (0,)), (print, (1,)), (print, (2,))]
    assert a._deferred == [] and threaded._DRAINING.get(threading.get_ident()) is None


def test_a_wake_up_posted_by_a_lone_message_or_outside_a_drain_is_sent_at_once() -> None:
    a, b, log = _pair()

    def handle() -> None:
        log.append("start")
        b._post(print, "x")
        log.append("end")

    a._inbox.append((handle, ()))
    threaded._drain(a)
    assert log == ["start", "wake b", "end"]
    b._woken = False
    b._post(print, "y")  # from no drain
    assert log[-1] == "wake b" and len(log) == 4


def test_a_failing_message_does_not_keep_a_wake_up_back() -> None:
    a, b, log = _pair()

    def post() -> None:
        b._post(print, "x")

    def fail() -> None:
        raise RuntimeError("a bug")

    a._inbox.extend([(post, ()), (fail, ()), (fail, ())])
    threaded._drain(a)
    assert log == ["wake b"] and len(a._loop.failures) == 2
    assert list(b._inbox) == [(print, ("x",))]
