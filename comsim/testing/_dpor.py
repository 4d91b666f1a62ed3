"""Optimal dynamic partial-order reduction (Abdulla, Aronis, Jonsson, Sagonas: "Optimal dynamic
partial order reduction", POPL 2014; "Source sets", JACM 2017) for the deterministic pump.

An event is one delivery: a message taken in by its receiver, and everything that runs until
the next delivery (``choose`` delivers when the loop is quiet). Two events are dependent when
they deliver to the same receiver (an apartment, or None: code outside any apartment), or touch
the same shared state of the runtime (``_dpor_watch``: its locks, noted with the call they
guard), or one is a barrier: delivered while an apartment's code was still running, or
followed by an apartment's teardown. Virtual time moves on only when no message is pending:
each time it does, a new epoch begins, after every event before. Happens-before: dependent
events in run order, a message's delivery after the event that sent it, epochs in order.

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

from .._runtime.context import OUTER_RUNTIME, WHERE
from .._runtime.schedule import DEFER, Schedule
from .._runtime.vtloop import all_tasks_blocked
from ._dpor_watch import Variable, conflict, noting, watch_runtime, watching
from ._runs import Scenario, run_once

#: the seed of the runtime's other seeded choices (faults, latency functions) in every run
SEED = 0

#: a delivery waits for the loop to be quiet at most this many times in a row (a task that
#: never waits, polling in a loop, would keep it busy for ever)
QUIET_LIMIT = 64


class Tree:
    """A wakeup tree: ordered children, each a message's name and the tree after it."""

    __slots__ = ("children",)

    def __init__(self) -> None:
        self.children: list[tuple[int, Tree]] = []

    def child(self, name: int) -> Tree | None:
        for n, sub in self.children:
            if n == name:
                return sub
        return None


class Info:
    """What a delivery did, for telling whether it commutes with another: its receiver, the
    shared variables it touched (``_dpor_watch``), whether it is a barrier (it commutes with
    nothing)."""

    __slots__ = ("barrier", "receiver", "touch")

    def __init__(self, receiver: str | None, touch: frozenset[Variable] = frozenset(),
                 barrier: bool = False) -> None:
        self.receiver = receiver
        self.touch = touch
        self.barrier = barrier

    def dependent(self, other: Info) -> bool:
        return (self.barrier or other.barrier or self.receiver == other.receiver
                or (bool(self.touch) and bool(other.touch)
                    and conflict(self.touch, other.touch)))


class Step:
    """The state before one delivery of the current run: the pending messages (name ->
    receiver), the sleep set and the messages explored here already (``done``: name ->
    ``Info``), the wakeup tree, and the event chosen: its message, ``Info`` (``event``), sender
    event (an index; < 0: none) and epoch (how often time moved on before it)."""

    __slots__ = ("barrier", "chosen", "done", "epoch", "maker", "pending", "sleep", "touch",
                 "wut")

    def __init__(self, pending: dict[int, str | None], sleep: dict[int, Info],
                 wut: Tree) -> None:
        self.pending = pending
        self.sleep = sleep
        self.done: dict[int, Info] = {}
        self.wut = wut
        self.chosen = -1
        self.maker = -1
        self.epoch = 0
        self.touch: set[Variable] = set()
        self.barrier = False

    @property
    def receiver(self) -> str | None:
        return self.pending[self.chosen]

    def info(self) -> Info:
        """What the chosen delivery did."""
        return Info(self.receiver, frozenset(self.touch), self.barrier)


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
        self.host_last = -1  # the last delivery to code outside any apartment, this epoch
        self.host_ran = False  # code outside any apartment touched shared state since
        self.blocked = False  # every pending message was asleep once: a redundant run
        self.strayed = False  # a message of the prefix or of a wakeup tree was not pending

    def bind(self, transport: Any) -> None:
        self.transport = transport

    def note(self, variable: Variable) -> None:
        """Shared state was touched (``_dpor_watch``): by the last delivery (what runs between
        two deliveries is its doing), or by code outside any apartment (it runs on after the
        last delivery to it: ``wait_all_tasks_blocked`` polls across deliveries), unless the
        clock moved on since (timers woke what runs now: the new epoch's root)."""
        if self.transport.loop.time() != self.time:
            return
        if WHERE.get() is None and OUTER_RUNTIME.get() is not None:  # outside: the host
            self.host_ran = True
            idx = self.host_last
        else:
            idx = self.i - 1 if self.i > self.epoch_start else -1
        if idx >= 0:
            self.steps[idx].touch.add(variable)

    def choose(self, targets: Sequence[str | None], proposal: int) -> int:
        transport = self.transport
        loop = transport.loop
        quiet = all_tasks_blocked(loop)
        if not quiet and self.quiet_waits < QUIET_LIMIT:
            self.quiet_waits += 1
            return DEFER
        self.quiet_waits = 0
        i = self.i
        steps = self.steps
        # virtual time moves on only when no message is pending: what is sent after, timers
        # set off, after every delivery so far (a new epoch, whose root it is)
        now = loop.time()
        fresh = now != self.time
        if fresh:
            maker = -2 - self.epoch
        else:
            maker = i - 1 if i > self.epoch_start else -1 - self.epoch
        # name the messages sent since the last delivery, the k-th of its doing so
        name_of = self.name_of
        ordinals = transport.ordinals
        for o in ordinals:
            if o not in name_of:
                k = self.sent.get(maker, 0)
                self.sent[maker] = k + 1
                parent = steps[maker].chosen if maker >= 0 else maker
                name = name_of[o] = self.names.get(parent, k)
                self.made_by[name] = maker
        if fresh:
            self.epoch += 1
            self.time = now
            self.epoch_start = i
            self.host_last = -1
        flags = self._flags()
        if i and flags != self.flags:  # an apartment began or ended its teardown
            by = self.host_last if self.host_ran and self.host_last >= 0 else i - 1
            steps[by].barrier = True
        self.flags = flags
        self.host_ran = False
        self.i = i + 1
        names = [name_of[o] for o in ordinals]
        if i < len(self.prefix):  # a step of an earlier run, kept
            step = steps[i]
            want = self.prefix[i]
            if want not in names:  # the run went elsewhere: it should not (a bug)
                self.strayed = True
                _drop(step.wut, want)
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
        # delivered while other code was still running (``QUIET_LIMIT``): what runs until the
        # next delivery is not all its doing
        step.barrier = not quiet
        step.touch = set()
        if step.receiver is None:
            self.host_last = i
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
            _drop(tree, name)
        awake = [n for n in names if n not in asleep]
        if not awake:  # a redundant run: run it to its end, out of the tree
            self.blocked = True
            return names[0]
        tree.children.append((awake[0], Tree()))
        return awake[0]


def _drop(tree: Tree, name: int) -> None:
    tree.children = [(n, sub) for n, sub in tree.children if n != name]


def reverse_races(steps: list[Step]) -> None:
    """Insert, for every race of the run ``steps``, the sequence that reverses it into the
    wakeup tree of the state before its first event (unless a message asleep there starts an
    equivalent one)."""
    infos = [s.info() for s in steps]
    pred = [0] * len(steps)  # happens-before: the events before each, as a bit set
    start = 0  # the first event of this epoch: every event before happens before it
    for j, s in enumerate(steps):
        if j and s.epoch != steps[j - 1].epoch:
            start = j
        info = infos[j]
        dependent = [i for i in range(start, j) if infos[i].dependent(info)]
        direct = [*dependent, s.maker] if s.maker >= 0 else dependent
        covered = (1 << start) - 1
        for d in direct:
            covered |= pred[d]
        bits = covered
        for d in direct:
            bits |= 1 << d
        pred[j] = bits
        for i in dependent:
            if i != s.maker and not covered >> i & 1:
                _reverse(steps, infos, pred, i, j)


def _reverse(steps: list[Step], infos: list[Info], pred: list[int], i: int, j: int) -> None:
    """Reverse the race of events ``i`` < ``j``: at the state before ``i``, the events after
    it (up to ``j``) that do not happen after it, then ``j``."""
    v = [k for k in range(i + 1, j) if not pred[k] >> i & 1]
    v.append(j)
    state = steps[i]
    asleep = {**state.sleep, **state.done}
    if any(_weak_initial(steps, infos, pred, v, q, info) for q, info in asleep.items()):
        return
    _insert(steps, infos, pred, state.wut, v)


def _weak_initial(steps: list[Step], infos: list[Info], pred: list[int], v: list[int],
                  name: int, info: Info | None) -> bool:
    """Whether the message ``name`` (whose delivery did ``info``, None: not known) can start
    a sequence equivalent to ``v`` (event indices), or be delivered first and commute with all
    of it."""
    mask = 0
    for k in v:
        mask |= 1 << k
    for k in v:
        if steps[k].chosen == name:
            return not pred[k] & mask
    return info is not None and not any(infos[k].dependent(info) for k in v)


def _insert(steps: list[Step], infos: list[Info], pred: list[int], tree: Tree,
            v: list[int]) -> None:
    """Insert the sequence ``v`` (event indices) into ``tree``, unless a sequence of the tree
    already covers it (one of its weak prefixes ends at a leaf). What a child not in ``v``
    would touch is not known: it is taken to commute with nothing."""
    rest = list(v)
    node = tree
    while True:
        for name, sub in node.children:
            if not _weak_initial(steps, infos, pred, rest, name, None):
                continue
            rest = [k for k in rest if steps[k].chosen != name]
            if not sub.children or not rest:
                return
            node = sub
            break
        else:
            for k in rest:
                sub = Tree()
                node.children.append((steps[k].chosen, sub))
                node = sub
            return


def backtrack(steps: list[Step]) -> list[int] | None:
    """The next prefix: at the deepest step whose wakeup tree has a child not yet run, that
    child; None when every trace has been run."""
    while steps:
        step = steps[-1]
        step.done[step.chosen] = step.info()
        _drop(step.wut, step.chosen)
        if step.wut.children:
            step.chosen = step.wut.children[0][0]
            return [s.chosen for s in steps]
        steps.pop()
    return None


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
