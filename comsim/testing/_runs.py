"""One exploration run and what explorations collect: a scenario run once on a fresh
deterministic runtime under a policy, its outcome (an exception raised by the scenario is the
outcome ``Raised(type, message)``) and its ``Schedule``; ``Exploration``, the outcomes of many
runs with the first run and schedule of each."""

from __future__ import annotations

import asyncio
import gc
import inspect
import re
import threading
import types
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, NamedTuple

from .._core.check import BadArgumentType, BadArgumentValue
from .._core.text import describe, safe_str
from .._runtime.runtime import Runtime
from .._runtime.schedule import DEFER, Policy, Schedule
from ._loop import VirtualTimeLoop

Scenario = Callable[[Runtime], Awaitable[Any]]


class Raised(NamedTuple):
    """The outcome of a run whose scenario raised: the exception's type and message."""

    type: str
    message: str


#: a decision that delivers a message (>= 0; ``DEFER`` is -1), without a Python frame
_DELIVERY: Callable[[int], bool] = DEFER.__lt__


class Exploration(dict[Hashable, int]):
    """``{outcome: first seed (run number, for "exhaustive") that reached it}``; ``counts``
    (runs per outcome), ``runs``, ``schedules`` (outcome -> that first run's ``Schedule``),
    ``interleavings`` (distinct delivery orders run), ``pct_bound`` (PCT's guaranteed chance
    per run of finding a bug of the depth asked, or None) and ``exhausted`` (every order was
    run)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[Hashable, int] = {}
        self.schedules: dict[Hashable, Schedule] = {}
        self.runs = 0
        self.interleavings = 0
        self.pct_bound: float | None = None
        self.exhausted = False
        self._orders: set[tuple[int, ...]] = set()

    def _add(self, seed: int, outcome: Hashable, schedule: Schedule) -> None:
        if outcome not in self:
            self[outcome] = seed
            self.schedules[outcome] = schedule
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.runs += 1
        order = tuple(filter(_DELIVERY, schedule.decisions))  # the decisions >= 0
        if order not in self._orders:
            self._orders.add(order)
            self.interleavings += 1

    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: seed {v} ({self.counts[k]}x)" for k, v in self.items())
        return f"<Exploration {self.runs} runs: {body}>"


#: a memory address in a repr (``<Future pending at 0x7f...>``): not the same in two runs
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class NotAScenario(BadArgumentType):
    """The scenario gave no awaitable (a plain ``def``): COMError(E_INVALIDARG), a TypeError."""


_Coroutine = types.CoroutineType


def scenario_name(scenario: Any) -> str:
    """How messages name a scenario: its qualified name, else its repr."""
    return str(getattr(scenario, "__qualname__", None) or repr(scenario))


def raised(exc: BaseException) -> Raised:
    """The outcome of a run whose scenario raised ``exc``: its type and message, the memory
    addresses in the message left out (so that one deadlock is one outcome, run after run)."""
    return Raised(type(exc).__name__, _ADDRESS.sub("", safe_str(exc)))


def _outcome(value: Any) -> Hashable:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


_REUSED = threading.local()


#: the most jumps of the virtual clock in one run of explore, replay or shrink: a run that
#: schedules timers for ever (a livelock) fails with ``JumpLimitExceeded`` instead of hanging
#: the exploration; no plausible scenario comes near (a million timers, each a step of time)
RUN_JUMP_LIMIT = 1_000_000


def _run_reusing_a_loop(main: Callable[[], Awaitable[Any]]) -> Any:
    """``comsim.testing.run(main)``, on a virtual-time loop kept for the next run (this
    thread's; rewound to time 0 in between) instead of a new one per run."""
    loop: VirtualTimeLoop | None = getattr(_REUSED, "loop", None)
    if loop is None or not loop.rewind():
        if loop is not None and not loop.is_closed():
            loop.close()
        loop = VirtualTimeLoop()
        _REUSED.loop = loop
    loop.jump_limit = RUN_JUMP_LIMIT
    try:
        return loop.run_until_complete(main())
    finally:
        loop.forget_done_tasks()


def run_once(scenario: Scenario, seed: int | None, policy: Policy | None = None, *,
             capture: bool = True, api: str = "explore") -> tuple[Hashable, Schedule]:
    """One run on a fresh deterministic runtime under ``policy`` (None: the seeded pump):
    (outcome, its schedule). With ``capture``, an exception raised by the scenario — any
    ``BaseException`` but ``KeyboardInterrupt``, ``SystemExit`` and ``CancelledError`` too —
    is the outcome ``Raised(type, message)``; without, it propagates with a note naming the
    seed (one that is no ``Exception`` inside a ``RuntimeError``, its ``__cause__``).

    Raises:
        COMError(E_INVALIDARG), also a ValueError: called where an event loop runs (async
            code, a scenario): a run needs a loop of its own.
        NotAScenario (COMError(E_INVALIDARG), also a TypeError): the scenario gave no
            awaitable (the message names ``api``, the function the user called).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise BadArgumentValue(
            "comsim.testing.explore, replay and shrink run each scenario on a loop of their "
            "own and must be called from synchronous code, not where an event loop runs (in "
            "an async test: await anyio.to_thread.run_sync(lambda: explore(...)))")
    box: dict[str, Any] = {}

    async def main() -> Any:
        async with Runtime(deterministic=True, seed=seed) as rt:
            if policy is not None:
                rt._use_policy(policy)
            box["rt"] = rt
            got = scenario(rt)
            if type(got) is not _Coroutine and not inspect.isawaitable(got):
                raise NotAScenario(f"{api}: {scenario_name(scenario)}(rt) returned {got!r}, "
                                   f"not an awaitable: a scenario is an `async def scenario(rt)`")
            return await got

    try:
        outcome = _outcome(_run_reusing_a_loop(main))
    except (KeyboardInterrupt, NotAScenario):
        raise
    except BaseException as exc:
        if not capture:
            if not isinstance(exc, Exception):  # SystemExit must not end the caller
                wrapped = RuntimeError(f"the scenario raised {describe(exc)}")
                wrapped.add_note(f"comsim.testing.explore: failed under seed {seed}")
                raise wrapped from exc
            exc.add_note(f"comsim.testing.explore: failed under seed {seed}")
            raise
        outcome = raised(exc)
    schedule = box.pop("rt").schedule
    assert schedule is not None
    if gc.isenabled():
        _collect_the_run()
    return outcome, schedule


def _collect_the_run() -> None:
    """The run's objects are garbage now (its runtime and apartments refer to each other):
    collected while young, they never reach the older generations, whose collections cost the
    most, and their finalizers run now, not amid a later run. The middle generation is
    collected when the collector would have, every ``threshold1`` young collections."""
    _, due, _ = gc.get_threshold()
    _, young_collections, _ = gc.get_count()
    gc.collect(1 if young_collections >= due else 0)


