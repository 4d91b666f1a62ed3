"""Optimal dynamic partial-order reduction (Abdulla, Aronis, Jonsson, Sagonas: "Optimal dynamic
partial order reduction", POPL 2014; "Source sets", JACM 2017) for the deterministic pump.

An event is one delivery: a message taken in by its receiver, and everything that runs until
the next delivery (``choose`` delivers when the loop is quiet, or when all that is ready is
tasks waiting in ``wait_all_tasks_blocked``, which read nothing but whether the loop is quiet:
``_dpor_watch.waiting_tasks``). Two events are dependent when they deliver to the same receiver
(an apartment, or None: code outside any apartment), or touch the same shared state of the
runtime (``_dpor_watch``: its locks, noted with the call they guard, and the fields used
without a lock across apartments: a stub's connection, proxy and call-object counts, a thread's
pending calls; two reads of a stub's connection do not conflict), or one is a barrier:
delivered while other code was still running (an apartment's, or the host's, polling), or
followed by an apartment's teardown. Code is taken to read only its own apartment's state
besides that shared state (an object is used through its proxies, R1). Virtual time moves on
only when no message is pending: each time it does, a new epoch begins, after every event
before. So does one when a ``wait_all_tasks_blocked`` that waited at the last delivery returns
(``_returned``): it returns only once nothing is pending and nothing else is ready, so what its
task does next (the scenario's end, the runtime's teardown) comes after every delivery so far,
in every order of them. Happens-before: dependent events in run order, a message's delivery
after the event that sent it, epochs in order.

Messages are named across runs by where they come from, not by their ordinal (the n-th
message enqueued, which changes when two deliveries that commute swap): an epoch root's k-th
message, or the k-th message sent after the delivery of a named message (``Names``).

After each run, every race (two dependent events of an epoch, the later one's message not
sent by anything that happens after the earlier) is reversed: at the state before the earlier
one, a wakeup sequence (the events between them that do not happen after it, then the later
one) is inserted into that state's wakeup tree, unless a message asleep there (run there
already, and independent of everything since) could start an equivalent one. Runs follow the
wakeup trees, then take the oldest message not asleep.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from .._runtime.loop import all_tasks_blocked
from .._runtime.schedule import DEFER, Schedule
from ._dpor_trees import Info, Step, Tree, backtrack, drop, reverse_races
from ._dpor_watch import Variable, noting, still_waiting, waiting_tasks, watch_runtime, watching
from ._runs import Scenario, run_once

#: the seed of the runtime's other seeded choices (faults, latency functions) in every run
SEED = 0

#: a delivery waits for the loop to be quiet at most this many times in a row (a task that
#: never waits, polling in a loop, would keep it busy for ever)
QUIET_LIMIT = 64


class Names:
    """Names of messages that hold across runs: (the sender event's message, k) -> an int."""

    def __init__(self) -> None:
        self.table: dict[tuple[int, int], int] = {}

    def get(self, parent: int, k: int) -> int:
        return self.table.setdefault((parent, k), len(self.table))


class DporPolicy:
    """Replays ``prefix`` (names: an earlier run's steps, then at the last one a message not
    run there yet), follows the wakeup trees, then takes the oldest message not asleep;
    records the steps (``steps[:len(prefix)]`` are kept as they are) and what each touched."""

    def __init__(self, prefix: Sequence[int], root: Tree, steps: list[Step],
                 names: Names) -> None:
        self.prefix = prefix
        self.root = root
        self.steps = steps
        self.names = names
        self.i = 0
        self.quiet_waits = 0
        self.transport: Any = None
        self.rt: Any = None  # the run's runtime (``Search.run`` sets it)
        self.name_of: dict[int, int] = {}  # ordinal -> name
        self.made_by: dict[int, int] = {}  # name -> the index of the event that sent it
        self.time = 0.0
        self.epoch = 0  # how often virtual time moved on so far
        self.epoch_start = 0  # the first delivery of this epoch
        self.sent: dict[int, int] = {}  # sender event -> how many messages it sent so far
        self.flags: Any = None  # the apartments' states after the last delivery
        self.pollers: list[Any] = []  # tasks in ``wait_all_tasks_blocked`` at the last delivery
        self.cut = -1  # one of them returned: the ordinal from which on messages are a new
        #                epoch's (``_cut``)
        self.enqueued = 0  # the ordinal of the next message, at the last delivery
        self.blocked = False  # every pending message was asleep once: a redundant run
        self.strayed = False  # a message of the prefix or of a wakeup tree was not pending

    def bind(self, transport: Any) -> None:
        self.transport = transport

    def note(self, variable: Variable) -> None:
        """Shared state was touched (``_dpor_watch``), by the last delivery: what runs between
        two deliveries is its doing, unless the clock moved on since (timers woke what runs
        now: the new epoch's root), or a ``wait_all_tasks_blocked`` that was waiting when it
        was delivered has returned since (``_cut``)."""
        if self.cut >= 0 or self.transport.loop.time() != self.time:
            return
        i = self.i
        if i <= self.epoch_start:
            return  # before this epoch's first delivery: the epoch's root
        if self.pollers and self._returned():
            self._cut(self.transport.enqueued)
            return
        self.steps[i - 1].touch.add(variable)

    def _returned(self) -> bool:
        """Whether a ``wait_all_tasks_blocked`` that was waiting when the last delivery was
        made has returned since. It returns only once nothing is pending and nothing else is
        ready: the delivery's own doing is over, and what its task does next comes after
        every delivery so far, in every order of them (a new epoch, as when the clock moves
        on)."""
        return not all(still_waiting(t) for t in self.pollers)

    def _cut(self, ordinal: int) -> None:
        """A new epoch begins here (``_returned``): messages from ``ordinal`` on are its."""
        self.cut = ordinal
        flags = self._flags()
        if flags != self.flags:  # an apartment's teardown began or ended before
            self.steps[self.i - 1].barrier = True
        self.flags = flags

    def choose(self, targets: Sequence[str | None], proposal: int) -> int:
        transport = self.transport
        loop = transport.loop
        quiet = all_tasks_blocked(loop)
        pollers = [] if quiet else waiting_tasks(loop)
        if not quiet and not pollers and self.quiet_waits < QUIET_LIMIT:
            self.quiet_waits += 1
            return DEFER
        self.quiet_waits = 0
        i = self.i
        steps = self.steps
        # virtual time moves on only when no message is pending: what is sent after, timers
        # set off, after every delivery so far (a new epoch, whose root it is); so does what
        # a ``wait_all_tasks_blocked`` that returned does next (``_cut``)
        now = loop.time()
        if self.cut < 0 and self.pollers and now == self.time and self._returned():
            self._cut(self.enqueued)  # it sent nothing before: what is new is the epoch's
        cut = 0 if now != self.time else self.cut
        fresh = cut >= 0
        maker = i - 1 if i > self.epoch_start else -1 - self.epoch
        # name the messages sent since the last delivery, the k-th of its maker's doing so
        name_of = self.name_of
        ordinals = transport.ordinals
        for o in ordinals:
            if o in name_of:
                continue
            by = -2 - self.epoch if fresh and o >= cut else maker
            k = self.sent.get(by, 0)
            self.sent[by] = k + 1
            parent = steps[by].chosen if by >= 0 else by
            name = name_of[o] = self.names.get(parent, k)
            self.made_by[name] = by
        flags = self._flags()
        if i and flags != self.flags and self.cut < 0:  # an apartment began or ended its
            steps[i - 1].barrier = True                 # teardown
        self.flags = flags
        if fresh:
            self.epoch += 1
            self.time = now
            self.epoch_start = i
            self.cut = -1
        self.pollers = pollers
        self.enqueued = transport.enqueued
        self.i = i + 1
        names = [name_of[o] for o in ordinals]
        if i < len(self.prefix):  # a step of an earlier run, kept
            step = steps[i]
            want = self.prefix[i]
            if want not in names:  # the run went elsewhere: it should not (a bug)
                self.strayed = True
                drop(step.wut, want)
                want = self._pick(step.wut, names, {**step.sleep, **step.done})
        else:
            pending = dict(zip(names, targets, strict=True))
            sleep: dict[int, Info] = {}
            if i:
                prev = steps[i - 1]
                done = prev.info()
                sleep = {n: info for n, info in {**prev.sleep, **prev.done}.items()
                         if n in pending and n != prev.chosen and not info.dependent(done)}
            tree = steps[i - 1].wut.child(steps[i - 1].chosen) if i else self.root
            if tree is None:  # after a redundant step, out of the tree
                tree = Tree()
            want = self._pick(tree, names, sleep)
            step = Step(pending, sleep, tree)
            del steps[i:]
            steps.append(step)
        step.chosen = want
        step.maker = self.made_by[want]
        step.epoch = self.epoch
        # delivered while other code was still running (``QUIET_LIMIT``), besides waits for
        # the loop to be quiet (``waiting_tasks``): what runs until the next delivery is not
        # all its doing
        step.barrier = not quiet and not pollers
        step.touch = set()
        return names.index(want)

    def _flags(self) -> Any:
        rt = self.rt
        if rt is None:
            return None
        return [(a.name, a._accepting, a._closing, a._closed) for a in rt.apartments]

    def _pick(self, tree: Tree, names: list[int], asleep: dict[int, Info]) -> int:
        """The first child of the wakeup tree that is pending; with none, the oldest message
        not asleep (a new child)."""
        for name, _ in list(tree.children):
            if name in names:
                return name
            self.strayed = True
            drop(tree, name)
        awake = [n for n in names if n not in asleep]
        if not awake:  # a redundant run: run it to its end, out of the tree
            self.blocked = True
            return names[0]
        tree.children.append((awake[0], Tree()))
        return awake[0]


class Search:
    """Optimal DPOR's search: the policy of each run, and after it the next prefix."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.names = Names()
        self.root = Tree()
        self.prefix: list[int] = []
        self.current: DporPolicy | None = None
        self.blocked = 0  # runs blocked by their sleep sets (redundant)
        self.strayed = 0  # runs that did not go where a wakeup tree said

    def run(self, scenario: Scenario) -> tuple[Hashable, Schedule]:
        """The next run: its outcome and schedule."""
        policy = self.current = DporPolicy(self.prefix, self.root, self.steps, self.names)

        async def watched(rt: Any) -> Any:
            watch_runtime(rt)
            policy.rt = rt
            return await scenario(rt)

        with watching():
            noting(policy.note)
            try:
                return run_once(watched, SEED, policy)
            finally:
                noting(None)

    def advance(self) -> bool:
        """After a run: whether there is another to run."""
        policy = self.current
        assert policy is not None
        self.blocked += policy.blocked
        self.strayed += policy.strayed
        del self.steps[policy.i:]  # a run can end sooner than the prefix said
        reverse_races(self.steps)
        prefix = backtrack(self.steps)
        if prefix is None:
            return False
        self.prefix = prefix
        return True
