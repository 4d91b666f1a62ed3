"""The transport seam: how messages move between apartments' loops.

Everything that crosses from one apartment (or from code outside any) into another goes through
the runtime's one ``Transport``: requests, replies, cancels, ``run`` units and their results,
event signals, ``CoCancelCall``'s answer. Nothing else asks which runtime it runs on. There are
two implementations, one module each:

- ``threaded.ThreadedTransport``: every apartment is an OS thread running its own loop; a
  message goes into the target apartment's inbox and wakes its loop.
- ``deterministic.DeterministicTransport``: every apartment lives on the caller's virtual-time
  loop, and a seeded pump picks which pending message is delivered next (latency injection
  and the seed govern every message).

Later transports (a scheduling strategy for exploration, another process) plug in here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol


class Transport(Protocol):
    """Deliver this message to that apartment; run this on that loop; what time is it.

    ``apartment`` is an ``apartment.Apartment`` (a module above this one)."""

    #: True when every apartment shares the caller's virtual-time loop
    deterministic: bool

    def start(self, apartment: Any) -> None:
        """Give ``apartment`` a loop to run on (``apartment._attach``), and start it."""

    def post(self, apartment: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """Deliver ``fn(*args)`` in ``apartment``'s loop, in a context holding nothing of the
        sender's. False if the apartment no longer takes messages (R18)."""

    def signal(self, apartment: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """Deliver an event's signal to a waiter in ``apartment``, as ``post`` does, but with
        no channel latency: an event is a kernel object, not an RPC channel (choice). The seed
        still orders it among the other messages."""

    def to_loop(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any],
                args: tuple[Any, ...]) -> None:
        """Deliver ``fn(*args)`` to code outside any apartment that waits on ``loop`` (a
        ``run`` result, a shutdown's end, an event's signal); dropped if that loop closed."""

    def run_soon(self, apartment: Any, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` in ``apartment``'s loop soon: a control step (the start of its
        teardown), not a message, so it is neither delayed nor reordered."""

    def take_in(self, apartment: Any) -> None:
        """Take in, now, the messages already posted to ``apartment`` (its teardown begins:
        what was posted before shutdown began is taken in, R18)."""

    def stop(self, apartment: Any) -> None:
        """``apartment``'s teardown has ended: its loop may stop."""

    def join(self, apartment: Any) -> None:
        """Wait until ``apartment``'s loop has stopped and closed (its thread has ended), when
        called from anywhere but that loop (R18: nothing is left behind)."""

    async def settled(self) -> None:
        """Return once what was sent to code outside any apartment on the caller's loop has
        been delivered (a shutdown's end that another task waits for): the runtime's exit
        leaves none on its way (R18)."""

    def tasks_of(self, apartment: Any) -> Iterable[asyncio.Task[Any]]:
        """The tasks on ``apartment``'s loop that its code made (``asyncio.create_task`` in a
        unit): its teardown ends them with its own (R18)."""

    def set_latency(self, key: tuple[str | None, str | None], seconds: Any) -> None:
        """Delay messages on a channel (``(source, target)`` apartment names, None: any).

        Raises:
            RuntimeError: the transport cannot delay messages (the threaded one).
        """

    def now(self) -> float:
        """The runtime's clock, in seconds (the virtual-time loop's, when deterministic)."""
