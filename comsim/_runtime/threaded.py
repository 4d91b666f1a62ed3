"""The threaded transport: every apartment is an OS thread running its own loop.

A message from another thread goes into the target apartment's inbox (a deque: appends and
pops need no lock), then the loop is woken to take it in. No message is taken once shutdown has
begun (R18): a message that went in while shutdown began is taken back, unless the teardown,
which takes in the inbox first (``take_in``), has it already. No lock is held across the
wake-up: the woken thread would run straight into it, and on one core that costs two more
thread switches per message.

A burst of messages costs one wake-up: a message posted while a wake-up is on its way (the
apartment's ``_woken``, cleared as the drain begins) is taken in by that wake-up's drain.

A wake-up posted while a drain takes in a burst is sent as that drain reaches its burst's last
message (the draining apartment's ``_deferred``; ``_DRAINING`` names it per thread): the woken
thread then finds the GIL free, or nearly, as it wakes. Sent at once, it would wake into a GIL
held for the rest of the burst, and sleep and be woken again (a second thread switch, and on
two CPUs a second cross-CPU wake-up). A message posted from the last message of a burst, or
from outside a drain, wakes its apartment at once, as before: a single call's hand-off still
overlaps the sender's remaining work. The cost: a task resumed inside a burst (``resume``) that
then blocks its OS thread (a non-COM wait, a long computation) holds back the wake-ups of the
messages it posted until it lets go; waiting so for another apartment's work can deadlock, as
blocking an apartment's thread can in COM (R2).

Messages to one apartment are taken in in the order they entered its inbox. As in COM, nothing
orders them against other channels (an event's ``Signal``, a ``run`` result). A message that
wakes a task (a request for an idle server task, a reply for its caller) lets that task go on
in the turn that takes the message in (``futures.resume``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .._core.rules import TEARDOWN_GRACE
from .._core.text import safe_repr
from .futures import call_in_loop
from .loop import ApartmentLoop


def _new_apartment_loop() -> asyncio.AbstractEventLoop:
    """A threaded apartment's loop (``ApartmentLoop``). On Windows, the platform's default
    loop (a proactor, which has no selector to wrap)."""
    if sys.platform == "win32":  # pragma: no cover - tests run on Linux
        return asyncio.new_event_loop()
    return ApartmentLoop()


#: the apartment whose inbox each thread is draining, by thread (``threading.get_ident``)
_DRAINING: dict[int, Any] = {}


def _drain(apt: Any) -> None:
    """Take in the messages of ``apt``'s inbox, in the order they were posted (each post wakes
    the loop once; a wake-up may find its message taken in by an earlier one). Wake-ups posted
    meanwhile wait in ``apt._deferred`` until the last message (the module's docstring)."""
    apt._woken = False  # before the first read: a message posted from now on wakes again
    inbox = apt._inbox
    if len(inbox) == 1:  # a lone message (a single call's hop): it is its burst's last, so
        fn, args = inbox.popleft()  # what it posts wakes at once; no wake-up is held back
        try:
            fn(*args)
        except BaseException as exc:  # a bug in comsim: report it, and take in the rest
            apt._loop.call_exception_handler(
                {"message": f"comsim: message {fn!r} failed in {apt!r}", "exception": exc})
    if not inbox:
        return
    ident = apt._ident  # (a drain runs on its apartment's own thread)
    outer = _DRAINING.get(ident)
    _DRAINING[ident] = apt
    try:
        while inbox:
            fn, args = inbox.popleft()
            if not inbox and apt._deferred:
                _send_deferred(apt)  # before the last message: its work overlaps them
            try:
                fn(*args)
            except BaseException as exc:  # a bug in comsim: report it, and take in the rest
                apt._loop.call_exception_handler(
                    {"message": f"comsim: message {fn!r} failed in {apt!r}", "exception": exc})
    finally:
        _DRAINING[ident] = outer
        if apt._deferred:
            _send_deferred(apt)


def _send_deferred(apt: Any) -> None:
    """Send the wake-ups that ``apt``'s drain held back."""
    deferred, apt._deferred = apt._deferred, []
    for other in deferred:
        try:
            other._wake()
        except RuntimeError:
            pass  # its loop has closed: its teardown took the message in


class ThreadedTransport:
    """``transport.Transport`` over threads. ``cpu``: on Linux, every apartment thread runs on
    that one CPU."""

    deterministic = False

    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = cpu
        self.now: Callable[[], float] = time.monotonic

    # ------------------------------------------------------------------ apartments
    def start(self, apartment: Any) -> None:
        """Start ``apartment``'s thread and wait until its loop runs.

        Raises:
            Whatever stopped the thread from starting its loop (``OSError`` for a CPU the
            process may not use, say), at once: nothing is left running.
        """
        ready = threading.Event()
        failed: list[BaseException] = []
        cpu = self.cpu

        def main() -> None:
            try:
                if cpu is not None and hasattr(os, "sched_setaffinity"):
                    os.sched_setaffinity(0, {cpu})  # this thread only
                loop = _new_apartment_loop()
                asyncio.set_event_loop(loop)
                apartment._attach(loop)
                if isinstance(loop, ApartmentLoop):
                    apartment._wake = loop.waker(functools.partial(_drain, apartment),
                                                 apartment._ctx0)
                else:
                    apartment._wake = functools.partial(
                        loop.call_soon_threadsafe, _drain, apartment, context=apartment._ctx0)
            except BaseException as exc:  # the apartment cannot start: the creator is told
                failed.append(exc)
                return
            finally:
                ready.set()
            _run(loop, apartment)

        thread = threading.Thread(target=main, name=f"comsim-{apartment.name}", daemon=True)
        apartment._thread = thread
        apartment._post = self._poster(apartment)
        thread.start()
        ready.wait()
        if failed:
            thread.join()
            raise failed[0]

    def _poster(self, apt: Any) -> Callable[..., bool]:
        """``apt._post``: ``post(apt, fn, args)`` for this one apartment, in one frame (every
        message to an apartment is posted so; ``start`` installs it before anything can
        post)."""
        get_ident = threading.get_ident

        def post(fn: Callable[..., Any], *args: Any) -> bool:
            if not apt._accepting:
                return False
            ident = get_ident()
            if ident == apt._ident:
                # from the loop's own thread: the message runs in a later turn of this loop,
                # which lasts until the teardown (itself run here) has ended; its handler sees
                # `_closing`
                apt._loop.call_soon(fn, *args, context=apt._ctx0)
                return True
            message = (fn, args)
            inbox = apt._inbox
            inbox.append(message)
            if not apt._accepting:  # shutdown began meanwhile
                try:
                    inbox.remove(message)
                except ValueError:
                    return True  # the teardown has taken it in
                return False
            if apt._woken:
                return True  # a wake-up is on its way: its drain takes this message in too
            apt._woken = True
            draining = _DRAINING.get(ident)
            if draining is not None and draining._inbox:
                draining._deferred.append(apt)  # sent at its burst's last message
                return True
            try:
                apt._wake()
            except RuntimeError:
                pass  # the loop has closed: its teardown took the message in
            return True

        return post

    def post(self, apt: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        return bool(apt._post(fn, *args))  # the apartment's own (``_poster``)

    async def settled(self) -> None:
        pass  # ``to_loop`` queued its callbacks on the host's loop as each teardown ended

    def signal(self, apt: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        return self.post(apt, fn, args)

    def to_loop(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any],
                args: tuple[Any, ...]) -> None:
        call_in_loop(loop, fn, *args)

    def run_soon(self, apartment: Any, fn: Callable[[], Any]) -> None:
        apartment._loop.call_soon_threadsafe(fn, context=apartment._ctx0)

    def take_in(self, apartment: Any) -> None:
        _drain(apartment)

    def stop(self, apartment: Any) -> None:
        apartment._loop.stop()

    def join(self, apartment: Any) -> None:
        thread = apartment._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def tasks_of(self, apartment: Any) -> set[asyncio.Task[Any]]:
        return asyncio.all_tasks(apartment._loop)  # the apartment's loop is its own

    def set_latency(self, key: tuple[str | None, str | None], seconds: Any) -> None:
        raise RuntimeError("latency injection needs Runtime(deterministic=True)")


def _run(loop: asyncio.AbstractEventLoop, apartment: Any) -> None:
    """Run an apartment's loop until its teardown stops it, then close it."""
    try:
        while True:
            try:
                loop.run_forever()
                break  # stopped by the teardown
            except BaseException as exc:  # last resort: nothing ends the loop early
                loop.call_exception_handler({
                    "message": f"comsim: {safe_repr(exc)} escaped into {apartment!r}'s loop",
                    "exception": exc})
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            if pending:  # what the teardown left behind (R18): a grace period, no more
                loop.run_until_complete(asyncio.wait(pending, timeout=TEARDOWN_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
