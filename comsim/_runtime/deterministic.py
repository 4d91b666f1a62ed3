"""The deterministic transport: every apartment lives on the caller's virtual-time loop.

A pump delivers one pending message per step. A policy (``schedule``: seeded random by
default, a recorded schedule, PCT) picks which one, or lets everything else that is ready run
first, and every decision is recorded (``decisions``). Per-channel latency
(``Runtime.set_latency``) delays messages in virtual time. Every message goes through the pump
(requests, replies, cancels, ``run`` units and results, event signals), so the seed and the
latency govern them all, and the same seed replays the same trace.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import random
from collections.abc import Callable
from typing import Any

from .._core.check import is_number
from . import trace
from .boundary import call_hook
from .context import WHERE
from .futures import call_in_loop
from .schedule import DEFER, Policy, RandomPolicy, propose

_Message = tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...]]


class DeterministicTransport:
    """``transport.Transport`` on one virtual-time loop, with a seeded choice of message."""

    deterministic = True

    def __init__(self, loop: asyncio.AbstractEventLoop, seed: int | None) -> None:
        self.loop = loop
        self.rng = random.Random(seed)
        self.now: Callable[[], float] = loop.time
        self.pending: list[_Message] = []
        #: the receiver of each pending message (an apartment's name; None: code outside)
        self.targets: list[str | None] = []
        #: the sender of each pending message (an apartment's name; None: code outside)
        self.senders: list[str | None] = []
        #: each pending message's ordinal: the n-th message enqueued in this run (the same
        #: message has the same ordinal in every run with the same decisions up to it)
        self.ordinals: list[int] = []
        self.enqueued = 0
        #: who decides the next delivery (``schedule``), and what was decided so far
        self.policy: Policy = RandomPolicy()
        self.decisions: list[int] = []
        self.scheduled = False
        self.ctx = contextvars.Context()  # the pump's own callbacks
        self.host_ctx = contextvars.Context()  # messages to code outside any apartment
        #: per-apartment-pair latency: (sender name or None, target name) -> seconds or callable
        self.latency: dict[tuple[str | None, str | None], Any] = {}

    # ------------------------------------------------------------------ the seam
    def start(self, apartment: Any) -> None:
        apartment._attach(self.loop)

    def post(self, apt: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        if apt is not None and not apt._accepting:
            return False
        ctx = apt._ctx0 if apt is not None else self.host_ctx
        target = apt.name if apt is not None else None
        sender = _sender()
        delay = self._delay(apt)
        if delay:
            self.loop.call_later(delay, self._enqueue, ctx, fn, args, target, sender,
                                 context=self.ctx)
        else:
            self._enqueue(ctx, fn, args, target, sender)
        return True

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
        self.loop.call_soon(fn, context=apartment._ctx0)

    def take_in(self, apartment: Any) -> None:
        pass  # pending messages stay with the pump; their handlers see the teardown

    def stop(self, apartment: Any) -> None:
        pass  # the loop is the caller's

    def join(self, apartment: Any) -> None:
        pass  # no thread of its own

    def set_latency(self, key: tuple[str | None, str | None], seconds: Any) -> None:
        self.latency[key] = seconds

    # ------------------------------------------------------------------ the pump
    def _delay(self, target: Any) -> float:
        if not self.latency:
            return 0.0
        src = _sender()
        dst = target.name if target is not None else None
        spec = self.latency.get((src, dst), self.latency.get((None, dst),
                                                             self.latency.get((None, None))))
        if spec is None:
            return 0.0
        if not callable(spec):
            return float(spec)
        # the user's latency function: a failure or a bad value is traced, and means no delay
        delay = call_hook("latency.error", {"target": dst}, 0.0, spec, self.rng)
        if is_number(delay) and 0 <= delay < math.inf:
            return float(delay)
        trace.emit("latency.error", target=dst, exc=f"bad delay {delay!r}")
        return 0.0

    def _enqueue(self, ctx: contextvars.Context, fn: Callable[..., Any],
                 args: tuple[Any, ...], target: str | None, sender: str | None) -> None:
        self.pending.append((ctx, fn, args))
        self.targets.append(target)
        self.senders.append(sender)
        self.ordinals.append(self.enqueued)
        self.enqueued += 1
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._deliver, context=self.ctx)

    def _deliver(self) -> None:
        self.scheduled = False
        if not self.pending:
            return
        # the policy picks a pending message, or lets everything else that is ready run first
        targets = self.targets
        decision = self.policy.choose(targets, propose(self.rng, len(targets)))
        self.decisions.append(decision)
        if decision == DEFER:
            self.scheduled = True
            self.loop.call_soon(self._deliver, context=self.ctx)
            return
        del self.targets[decision]
        del self.senders[decision]
        del self.ordinals[decision]
        ctx, fn, args = self.pending.pop(decision)
        try:
            ctx.run(fn, *args)
        except BaseException as exc:  # a bug in comsim: report it, and deliver the rest
            self.loop.call_exception_handler(
                {"message": f"comsim: message {fn!r} failed", "exception": exc})
        finally:
            if self.pending and not self.scheduled:
                self.scheduled = True
                self.loop.call_soon(self._deliver, context=self.ctx)


def _sender() -> str | None:
    """The apartment sending a message now (its name; None: code outside any)."""
    w = WHERE.get()
    return w.apartment.name if w is not None else None
