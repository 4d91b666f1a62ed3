"""The deterministic transport: every apartment lives on the caller's virtual-time loop.

A pump delivers one pending message per step. A policy (``schedule``: seeded random by
default, a recorded schedule, PCT) picks which one, or lets everything else that is ready run
first, and every decision is recorded (``decisions``). Per-channel latency
(``Runtime.set_latency``) delays messages in virtual time. Every message goes through the pump
(requests, replies, cancels, ``run`` units and results, event signals), so the seed and the
latency govern them all, and the same seed replays the same trace.

A message posted from another OS thread (code of a plain thread entering an apartment or the
NA, R5, R31; a threaded runtime's apartment calling in) is handed to the loop's own thread
(``call_soon_threadsafe``, which wakes the loop) and enqueued there, with no channel latency:
asyncio's ``call_soon`` is not thread-safe and would not wake a loop waiting for I/O.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import random
import threading
from collections.abc import Callable
from typing import Any

from .._core.check import is_number
from .._core.text import safe_repr
from . import trace
from .context import WHERE
from .futures import call_in_loop, settle
from .schedule import DEFER, DEFER_PROBABILITY, Policy, RandomPolicy
from .vtloop import VirtualTimeLoop

#: a pending message: its context, handler and arguments, its receiver and sender (an
#: apartment's name; None: code outside), and its ordinal (the n-th message enqueued in this
#: run: the same message has the same ordinal in every run with the same decisions up to it)
_Message = tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...], str | None,
                 str | None, int]


class DeterministicTransport:
    """``transport.Transport`` on one virtual-time loop, with a seeded choice of message."""

    deterministic = True

    def __init__(self, loop: VirtualTimeLoop, seed: int | None) -> None:
        self.loop = loop
        self.rng = random.Random(seed)
        self.now: Callable[[], float] = loop.clock
        #: the pending messages, oldest first: (context, handler, arguments, receiver,
        #: sender, ordinal) each (one list, one append per message; ``targets``, ``senders``
        #: and ``ordinals`` read its columns)
        self.pending: list[_Message] = []
        self.enqueued = 0
        #: who decides the next delivery (``schedule``), and what was decided so far
        self.policy: Policy = RandomPolicy()
        self.decisions: list[int] = []
        self.scheduled = False
        self.ctx = contextvars.Context()  # the pump's own callbacks
        self.host_ctx = contextvars.Context()  # messages to code outside any apartment
        #: those messages on their way (``_to_host``), and who waits until there are none
        self.to_host = 0
        self._settled: list[asyncio.Future[None]] = []
        #: per-apartment-pair latency: (sender name or None, target name) -> seconds or callable
        self.latency: dict[tuple[str | None, str | None], Any] = {}
        #: a message is being taken in; then ``_mark``: where in the loop's ready queue the
        #: next delivery step was asked for (``VirtualTimeLoop.call_soon_at``)
        self._delivering = False
        self._mark = 0
        self._ready_count = loop.ready_count
        self._runs_next = loop.runs_next
        self._call_soon_at = loop.call_soon_at
        #: the loop's own thread (the transport is made there, as the runtime is entered)
        self._thread = threading.get_ident()

    @property
    def targets(self) -> list[str | None]:
        """The receiver of each pending message (an apartment's name; None: code outside)."""
        return [m[3] for m in self.pending]

    @property
    def senders(self) -> list[str | None]:
        """The sender of each pending message (an apartment's name; None: code outside)."""
        return [m[4] for m in self.pending]

    @property
    def ordinals(self) -> list[int]:
        """Each pending message's ordinal (``_Message``)."""
        return [m[5] for m in self.pending]

    # ------------------------------------------------------------------ the seam
    def start(self, apartment: Any) -> None:
        apartment._attach(self.loop)
        apartment._post = self._poster(apartment)

    def _poster(self, apt: Any) -> Callable[..., bool]:
        """``apt._post``: ``post(apt, fn, args)`` for this one apartment, in one frame (every
        request, reply and cancel is posted so)."""
        ctx = apt._ctx0
        target = apt.name
        pending = self.pending
        get_where = WHERE.get
        ready_count = self._ready_count
        get_ident = threading.get_ident
        thread = self._thread

        def post(fn: Callable[..., Any], *args: Any) -> bool:
            if not apt._accepting:
                return False
            if get_ident() != thread:  # from another OS thread: ``_enqueue`` hands it over
                self._enqueue(ctx, fn, args, target, None)
                return True
            w = get_where()
            sender = w.apartment.name if w is not None else None
            if self.latency:
                delay = self._delay(apt, sender)
                if delay:
                    self.loop.call_later(delay, self._arrive, ctx, fn, args, target, sender,
                                         context=self.ctx)
                    return True
            ordinal = self.enqueued
            pending.append((ctx, fn, args, target, sender, ordinal))
            self.enqueued = ordinal + 1
            if not self.scheduled:
                self.scheduled = True
                if self._delivering:  # ``_deliver`` schedules its next step when it returns
                    self._mark = ready_count()
                else:
                    self.loop.call_soon(self._deliver, context=self.ctx)
            return True

        return post

    def post(self, apt: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        if apt is not None:
            return bool(apt._post(fn, *args))  # the apartment's own (``_poster``)
        # to code outside any apartment (a ``run`` result, a shutdown's end): counted until
        # it is delivered (``settled``)
        self.to_host += 1
        fn, args = self._to_host, (fn, args)
        sender = _sender()
        if self.latency and threading.get_ident() == self._thread:
            delay = self._delay(None, sender)
            if delay:
                self.loop.call_later(delay, self._arrive, self.host_ctx, fn, args, None,
                                     sender, context=self.ctx)
                return True
        self._enqueue(self.host_ctx, fn, args, None, sender)
        return True

    def _to_host(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """A message to code outside any apartment is delivered."""
        self.to_host -= 1
        try:
            fn(*args)
        finally:
            if not self.to_host and self._settled:
                waiters, self._settled = self._settled, []
                for fut in waiters:
                    settle(fut, None)

    async def settled(self) -> None:
        """``Transport.settled``: until no message to code outside any apartment is on its
        way."""
        while self.to_host:
            fut = self.loop.create_future()
            self._settled.append(fut)
            await fut

    def signal(self, apt: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        if not apt._accepting:
            return False
        self._enqueue(apt._ctx0, fn, args, apt.name, _sender())
        return True

    def to_loop(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any],
                args: tuple[Any, ...]) -> None:
        if loop is self.loop:
            self.post(None, fn, args)
        else:  # a loop of another thread: not the simulation's
            call_in_loop(loop, fn, *args)

    def run_soon(self, apartment: Any, fn: Callable[[], Any]) -> None:
        if threading.get_ident() != self._thread:
            self.loop.call_soon_threadsafe(fn, context=apartment._ctx0)
        else:
            self.loop.call_soon(fn, context=apartment._ctx0)

    def take_in(self, apartment: Any) -> None:
        pass  # pending messages stay with the pump; their handlers see the teardown

    def stop(self, apartment: Any) -> None:
        pass  # the loop is the caller's

    def join(self, apartment: Any) -> None:
        pass  # no thread of its own

    def tasks_of(self, apartment: Any) -> Any:
        return apartment._spawned or ()  # noted as they were made (``context.note_task``)

    def set_latency(self, key: tuple[str | None, str | None], seconds: Any) -> None:
        self.latency[key] = seconds

    # ------------------------------------------------------------------ the pump
    def _delay(self, target: Any, src: str | None) -> float:
        dst = target.name if target is not None else None
        latency = self.latency
        spec = latency.get((src, dst))  # a stored latency is never None (``set_latency``)
        if spec is None:
            spec = latency.get((None, dst))
            if spec is None:
                spec = latency.get((None, None))
                if spec is None:
                    return 0.0
        if not callable(spec):
            return float(spec)
        # the user's latency function: a failure or a bad value is traced, and means no delay
        # (``boundary.call_hook``, written out)
        try:
            delay = spec(self.rng)
        except BaseException as exc:  # the boundary: nothing goes through
            trace.emit("latency.error", target=dst, exc=safe_repr(exc))
            return 0.0
        if type(delay) is float and 0.0 <= delay < math.inf:
            return delay
        if is_number(delay) and 0 <= delay < math.inf:
            return float(delay)
        trace.emit("latency.error", target=dst, exc=f"bad delay {safe_repr(delay)}")
        return 0.0

    def _append(self, ctx: contextvars.Context, fn: Callable[..., Any],
                args: tuple[Any, ...], target: str | None, sender: str | None) -> None:
        """A pending message, with its receiver, sender and ordinal (``post`` writes this
        out: every message comes that way)."""
        ordinal = self.enqueued
        self.pending.append((ctx, fn, args, target, sender, ordinal))
        self.enqueued = ordinal + 1

    def _enqueue(self, ctx: contextvars.Context, fn: Callable[..., Any],
                 args: tuple[Any, ...], target: str | None, sender: str | None) -> None:
        if threading.get_ident() != self._thread:  # from another OS thread (the docstring)
            self.loop.call_soon_threadsafe(self._enqueue, ctx, fn, args, target, sender,
                                           context=self.ctx)
            return
        self._append(ctx, fn, args, target, sender)
        if not self.scheduled:
            self.scheduled = True
            if self._delivering:  # ``_deliver`` schedules its next step when it returns
                self._mark = self._ready_count()
            else:
                self.loop.call_soon(self._deliver, context=self.ctx)

    def _arrive(self, ctx: contextvars.Context, fn: Callable[..., Any],
                args: tuple[Any, ...], target: str | None, sender: str | None) -> None:
        """A delayed message arrives (a timer of the loop, set by ``post``)."""
        self._append(ctx, fn, args, target, sender)
        if not self.scheduled:
            if self._runs_next():
                # the loop's next turn would run nothing but the delivery step: take it here
                self._deliver()
                return
            self.scheduled = True
            self.loop.call_soon(self._deliver, context=self.ctx)

    def _deliver(self) -> None:
        """Delivery steps, one per turn of the loop. While the loop's next turn would run
        nothing but the next step (``VirtualTimeLoop.runs_next``: nothing else ready, no
        timer due), that step is taken here at once: the same order of events and the same
        decisions, with no loop turn in between. A step asked for while a message is taken in
        is queued where ``call_soon`` would have queued it then (``call_soon_at``)."""
        runs_next = self._runs_next
        rng = self.rng
        pending = self.pending
        decided = self.decisions.append
        while True:
            self.scheduled = False
            if not pending:
                return
            # the policy picks a pending message, or lets everything else that is ready run
            # first; ``propose``, written out: the same draws
            n = len(pending)
            if rng.random() < DEFER_PROBABILITY:
                decision = DEFER
            else:
                decision = rng.randrange(n) if n > 1 else 0
            policy = self.policy
            if type(policy) is not RandomPolicy:  # the random pump takes its proposal
                decision = policy.choose([m[3] for m in pending], decision)
            decided(decision)
            if decision == DEFER:
                if runs_next():
                    continue
                self.scheduled = True
                self.loop.call_soon(self._deliver, context=self.ctx)
                return
            ctx, fn, args, _target, _sender, _ordinal = pending.pop(decision)
            self._delivering = True
            try:
                ctx.run(fn, *args)
            except BaseException as exc:  # a bug in comsim: report it, and deliver the rest
                self.loop.call_exception_handler(
                    {"message": f"comsim: message {fn!r} failed", "exception": exc})
            finally:
                self._delivering = False
                if self.scheduled:  # a message came meanwhile: its step was asked for then
                    mark = self._mark
                elif pending:
                    self.scheduled = True
                    mark = self._ready_count()
                else:
                    return
            if runs_next():
                continue
            self._call_soon_at(mark, self._deliver, self.ctx)
            return


def _sender() -> str | None:
    """The apartment sending a message now (its name; None: code outside any)."""
    w = WHERE.get()
    return w.apartment.name if w is not None else None
