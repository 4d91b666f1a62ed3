"""The wait-for graph of a deadlock report (``_deadlock``): which apartments wait on which,
and its cycles, a unit waiting on work only its own apartment can run among them."""

from __future__ import annotations

from typing import Any

#: the most wait-for cycles a deadlock report names (n apartments can form ~(n-1)!), and the
#: most steps spent finding them
MAX_CYCLES = 20
_CYCLE_STEPS = 20_000


def wait_for_cycles(waits: list[tuple[Any, Any]], order: dict[Any, int]
                    ) -> tuple[list[list[Any]], bool]:
    """The wait-for cycles between apartments (objects: two runtimes may name theirs alike),
    given who waits on whom (``waits``: pairs of apartments, None where not known),
    each from its first apartment in ``order``, searched among the apartments that reach it
    and are reached from it; at most ``MAX_CYCLES``, in at most ``_CYCLE_STEPS`` steps; and
    whether the search stopped before the end."""
    graph: dict[Any, set[Any]] = {}
    back: dict[Any, set[Any]] = {}
    for apt, edge in waits:
        if edge is not None and apt is not None:
            graph.setdefault(apt, set()).add(edge)
            back.setdefault(edge, set()).add(apt)
    rank, last = order.get, len(order)
    found: list[list[Any]] = []
    steps = 0

    def walk(start: Any, node: Any, path: list[Any], within: set[Any]) -> bool:
        nonlocal steps  # False: stop the search
        for nxt in sorted(graph.get(node, ()), key=lambda n: rank(n, last)):
            if nxt is start and len(path) == 1:
                continue  # a self-loop: found before the walk
            steps += 1
            if steps > _CYCLE_STEPS or (nxt is start and len(found) == MAX_CYCLES):
                return False
            if nxt is start:
                found.append([*path, start])
            elif nxt in within and nxt not in path and rank(nxt, -1) > rank(start, -1):
                if not walk(start, nxt, [*path, nxt], within):
                    return False
        return True

    for start in sorted(graph, key=lambda n: rank(n, last)):
        if start in graph[start]:  # a unit waits on work only its own apartment can run
            if len(found) == MAX_CYCLES:
                return found, True
            found.append([start, start])
        within = _reach(start, graph) & _reach(start, back)
        if len(within) > 1 and not walk(start, start, [start], within):
            return found, True
    return found, False


def _reach(start: Any, edges: dict[Any, set[Any]]) -> set[Any]:
    seen, todo = {start}, [start]
    while todo:
        new = edges.get(todo.pop(), set()) - seen
        seen |= new
        todo += new
    return seen
