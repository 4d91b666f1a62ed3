"""Schedules: the deterministic pump's decisions, recorded, replayed, and chosen by a strategy.

At each delivery step the pump (``deterministic.DeterministicTransport``) has a list of pending
messages, oldest first, and a policy decides: deliver message ``k`` (an index into that list),
or ``DEFER`` (let everything else that is ready run first, then decide again). The default
decision is 0: the oldest message, no deferral. A ``Schedule`` is the list of decisions one run
took; replaying it reproduces the run exactly (with the seed, for the runtime's other seeded
choices: probabilistic faults, latency functions). A decision that no longer fits (an index
past the pending list, after a schedule was edited by shrinking) falls back to the default, and
so does every step past the end of the list.

Policies: ``RandomPolicy`` (the seeded pump of old: defer with probability 1/4, else a uniform
choice), ``ReplayPolicy``, ``PCTPolicy`` (probabilistic concurrency testing for messages:
apartments get random priorities; the oldest pending message to the highest-priority receiver
goes next; ``depth - 1`` change points each lower the priority of the receiver at that step;
or the same over channels, sender to receiver), ``DefaultPolicy``.
"""

from __future__ import annotations

import json
import operator
import random
from collections.abc import Sequence
from os import PathLike
from typing import Any, Protocol

from .._core.check import BadArgumentType, BadArgumentValue
from .._core.text import safe_repr

#: a decision: let everything else that is ready run first
DEFER = -1
#: the default decision: the oldest pending message, no deferral
OLDEST = 0
#: how often the random pump defers
DEFER_PROBABILITY = 0.25
FORMAT = "comsim-schedule"
VERSION = 1


class Policy(Protocol):
    """Chooses the next delivery: ``targets`` are the receivers (apartment names, None for
    code outside any apartment) of the pending messages, oldest first; ``proposal`` is the
    seeded random pump's choice (``propose``), drawn at every step whatever the policy, so that
    the runtime's other seeded choices (faults, latency functions) see the same random stream
    under every policy: a replayed run draws what the recorded one drew."""

    def choose(self, targets: Sequence[str | None], proposal: int) -> int: ...


def propose(rng: random.Random, n: int) -> int:
    """The seeded random pump's choice among ``n`` pending messages: ``DEFER`` with
    probability ``DEFER_PROBABILITY``, else a uniform index."""
    if rng.random() < DEFER_PROBABILITY:
        return DEFER
    return rng.randrange(n) if n > 1 else 0


class RandomPolicy:
    """The seeded pump: its proposal."""

    def choose(self, targets: Sequence[str | None], proposal: int) -> int:
        return proposal


class ReplayPolicy:
    """Takes recorded decisions in order; one that does not fit, and every step past the end,
    is the default."""

    def __init__(self, decisions: Sequence[int]) -> None:
        self.decisions = decisions
        self.step = 0

    def choose(self, targets: Sequence[str | None], proposal: int) -> int:
        i = self.step
        self.step = i + 1
        if i < len(self.decisions):
            d = self.decisions[i]
            if d == DEFER or 0 <= d < len(targets):
                return d
        return OLDEST


class PCTPolicy:
    """PCT for messages (Burckhardt et al., 2010; PCTCP, 2018): receivers get distinct random
    priorities when first seen; the oldest pending message to the highest-priority receiver is
    delivered; at each of ``depth - 1`` change points, drawn from the first ``k`` choice steps,
    the receiver of that step drops below every other. It never defers.

    A choice step is a delivery step with messages to two receivers or more pending: only
    there does a priority decide anything, so change points are drawn over those steps
    (``choice_steps`` counts them in a run), and ``competing`` are the receivers that met at
    one (PCT's n).

    With ``channels=True`` priorities go to channels (sender, receiver) instead, first in first
    out within a channel: a message may then overtake an older one from another sender to the
    same receiver, which receiver priorities never do.
    """

    def __init__(self, rng: random.Random, depth: int, k: int, channels: bool = False) -> None:
        self.rng = rng
        self.keys = _Keys(channels)
        self.priority: dict[Any, float] = {}
        self.change_points = set(rng.sample(range(max(k, depth)), max(depth - 1, 0)))
        self.choice_steps = 0
        self.competing: set[Any] = set()
        self.low = 0.0

    def bind(self, transport: Any) -> None:
        self.keys.transport = transport

    def choose(self, targets: Sequence[str | None], proposal: int) -> int:
        keys = self.keys.of(targets)
        prio = self.priority
        for key in keys:
            if key not in prio:
                prio[key] = 1.0 + self.rng.random()
        best = 0
        for i, key in enumerate(keys):
            if prio[key] > prio[keys[best]]:
                best = i
        if _is_choice(keys):
            self.competing.update(keys)
            if self.choice_steps in self.change_points:
                self.low -= 1.0
                prio[keys[best]] = self.low  # from the next step on
            self.choice_steps += 1
        return best


class DefaultPolicy:
    """The default decision at every step (the oldest message), counting the choice steps of
    PCT (``channels``: of PCT over channels)."""

    def __init__(self, channels: bool = False) -> None:
        self.keys = _Keys(channels)
        self.choice_steps = 0

    def bind(self, transport: Any) -> None:
        self.keys.transport = transport

    def choose(self, targets: Sequence[str | None], proposal: int) -> int:
        if _is_choice(self.keys.of(targets)):
            self.choice_steps += 1
        return OLDEST


class _Keys:
    """What PCT gives priorities to: the receivers of the pending messages, or (``channels``)
    their channels, (sender, receiver), read from the transport's ``senders``."""

    def __init__(self, channels: bool) -> None:
        self.channels = channels
        self.transport: Any = None

    def of(self, targets: Sequence[str | None]) -> Sequence[Any]:
        if self.channels:
            return list(zip(self.transport.senders, targets, strict=True))
        return targets


def _is_choice(keys: Sequence[Any]) -> bool:
    """A choice step: messages of two keys or more are pending (a priority decides)."""
    first = keys[0]
    return any(k != first for k in keys)


def _decision(d: Any) -> int:
    """``d`` as a decision: an int (``operator.index``), not a bool, a float or a str."""
    if isinstance(d, bool):
        raise TypeError(d)
    return operator.index(d)


class Schedule:
    """The decisions of one run of the deterministic pump (``decisions``), with the seed of the
    runtime's other seeded choices. ``preemptions`` counts the decisions that differ from the
    default (the oldest message, no deferral)."""

    def __init__(self, decisions: Sequence[int], seed: int | None = None) -> None:
        """Raises:
            COMError(E_INVALIDARG), also a TypeError: ``decisions`` not a sequence of ints,
                ``seed`` neither an int nor None.
            COMError(E_INVALIDARG), also a ValueError: a decision below ``DEFER`` (-1).
        """
        try:
            checked = [d if type(d) is int else _decision(d) for d in decisions]
        except TypeError:
            raise BadArgumentType(f"Schedule: decisions must be a sequence of ints (an index "
                                  f"into the pending messages, or -1 to defer), not "
                                  f"{safe_repr(decisions)}"[:300]) from None
        if checked and min(checked) < DEFER:
            raise BadArgumentValue(f"Schedule: a decision is an index into the pending "
                                   f"messages (>= 0) or -1 to defer, not {min(checked)}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise BadArgumentType(f"Schedule: seed must be an int or None, not {safe_repr(seed)}")
        self.decisions = checked
        self.seed = seed

    @property
    def preemptions(self) -> int:
        return sum(1 for d in self.decisions if d != OLDEST)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Schedule) and self.decisions == other.decisions
                and self.seed == other.seed)

    def __hash__(self) -> int:
        return hash((tuple(self.decisions), self.seed))

    def __repr__(self) -> str:
        return (f"<Schedule {len(self.decisions)} decisions, {self.preemptions} preemptions, "
                f"seed {self.seed}>")

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "seed": self.seed,
                "decisions": self.decisions}

    @classmethod
    def from_json(cls, data: Any) -> Schedule:
        """Raises ValueError for anything but a schedule of a version this comsim reads."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a comsim schedule")
        if data.get("version") != VERSION:
            raise ValueError(f"comsim schedule version {data.get('version')!r}; this comsim "
                             f"reads version {VERSION}")
        decisions = data.get("decisions")
        seed = data.get("seed")
        if not isinstance(decisions, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= DEFER
                for d in decisions):
            raise ValueError("a schedule's decisions are ints >= -1")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("a schedule's seed is an int or null")
        return cls(decisions, seed)

    def save(self, path: str | PathLike[str]) -> None:
        """Write the schedule as a versioned JSON file."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, separators=(",", ":"))

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Schedule:
        """Read a schedule written by ``save``.

        Raises:
            COMError(E_INVALIDARG), also a ValueError: the file holds no schedule this comsim
                reads (not JSON, not UTF-8, another format or version); the message names it.
            OSError: the file cannot be read.
        """
        with open(path, encoding="utf-8") as f:
            try:
                return cls.from_json(json.load(f))
            # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError: nested
            # too deep for the decoder (no schedule is)
            except (ValueError, RecursionError) as exc:
                raise BadArgumentValue(
                    f"Schedule.load({str(path)!r}): {exc}; give a file written by "
                    f"Schedule.save (a failing explore names the one it saved)") from None
