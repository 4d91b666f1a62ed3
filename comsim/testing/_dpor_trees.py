"""Optimal DPOR's bookkeeping (``_dpor``): the states of a run (``Step``), what each delivery
did (``Info``), wakeup trees (``Tree``), and, after each run, the reversal of its races
(``reverse_races``) and the next prefix to run (``backtrack``)."""

from __future__ import annotations

from ._dpor_watch import Variable, conflict


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


def drop(tree: Tree, name: int) -> None:
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
        drop(step.wut, step.chosen)
        if step.wut.children:
            step.chosen = step.wut.children[0][0]
            return [s.chosen for s in steps]
        steps.pop()
    return None
