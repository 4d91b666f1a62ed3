"""Zoo scenarios of pure ordering: records written in parts by two apartments into a third's
journal, whose parser (the planted bug) copes with some interleavings and not others. They
are the zoo's yardsticks for depth: the bug is exactly a pattern of d ordering constraints
that alternate between the two writers."""

from __future__ import annotations

from typing import Any

import comsim

from ._common import publish, together


class IJournal(comsim.Interface):
    async def Write(self, who: str, part: int) -> None: ...


class Journal(comsim.CoClass, IJournal):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    async def Write(self, who: str, part: int) -> None:
        self.parts.append(f"{who}{part}")


async def _two_writers(rt: comsim.Runtime, parts: int) -> list[str]:
    journal = await rt.create_sta("journal")
    x, y = await rt.create_sta("x"), await rt.create_sta("y")
    keep: dict[str, Any] = {}
    stream = await publish(journal, Journal, IJournal, keep)

    async def write(who: str) -> None:
        j = comsim.unmarshal_interface(stream, IJournal)
        for part in range(1, parts + 1):
            await j.Write(who, part)

    await together((x, write, ("x",)), (y, write, ("y",)))
    return keep["obj"].parts


def _before(parts: list[str], a: str, b: str) -> bool:
    return parts.index(a) < parts.index(b)


async def nested_record(rt: comsim.Runtime) -> tuple[str, ...]:
    """Two apartments ``x`` and ``y`` each write a two-part record (part 1, part 2: two
    synchronous calls) into ``journal``'s journal. The journal's reader copes with records
    that interleave first-opened-first-closed, but (the planted bug) not with a record
    opened and closed entirely inside another.

    Depth 2 (an atomicity violation, PCT's classic depth-2 shape): x1 < y1 and y2 < x2.
    The two constraints favour x, then y; under the default order the writers alternate
    (x1 y1 x2 y2), which violates the second.
    """
    parts = await _two_writers(rt, 2)
    for a, b in (("x", "y"), ("y", "x")):
        if _before(parts, f"{a}1", f"{b}1") and _before(parts, f"{b}2", f"{a}2"):
            raise AssertionError(f"{b}'s record nested inside {a}'s: {parts}")
    return tuple(parts)


async def crossed_records(rt: comsim.Runtime) -> tuple[str, ...]:
    """``x`` and ``y`` (STAs) each write a three-part record into ``journal`` (three
    synchronous calls): a check-then-act across three apartments, where each writer's
    part 3 acts on what its part 1 found. The reader copes with every interleaving but one
    that crosses twice (the planted bug): x1 < y1, y2 < x2, x3 < y3 (or the same with x and
    y swapped).

    Depth 3: three ordering constraints that favour x, then y, then x again. Under the
    default order the writers alternate (x1 y1 x2 y2 x3 y3), which violates the second;
    breaking it (y2 first) also puts y3's request first, so the third needs one more.
    """
    parts = await _two_writers(rt, 3)
    for a, b in (("x", "y"), ("y", "x")):
        if (_before(parts, f"{a}1", f"{b}1") and _before(parts, f"{b}2", f"{a}2")
                and _before(parts, f"{a}3", f"{b}3")):
            raise AssertionError(f"records crossed twice: {parts}")
    return tuple(parts)


async def starved_writer(rt: comsim.Runtime) -> tuple[str, ...]:
    """``x`` and ``y`` each write six parts into ``journal``; the reader expects (the planted
    bug) to see ``x``'s first part before ``y`` is done, and fails when ``y``'s whole record
    arrives before ``x`` has written anything: a request from one apartment overtaken by a
    long exchange between two others.

    Depth 1: one ordering constraint (y6 < x1), but it holds only if ``x`` is starved for all
    of ``y``'s twelve deliveries: the random pump must decide against ``x`` at each of them,
    PCT only has to give ``y`` and the journal priority over ``x`` once.
    """
    parts = await _two_writers(rt, 6)
    if _before(parts, "y6", "x1"):
        raise AssertionError(f"y's record finished before x began: {parts}")
    return tuple(parts)


async def long_phases(rt: comsim.Runtime) -> tuple[str, ...]:
    """``x`` and ``y`` each write eight parts into ``journal``; the reader (the planted bug)
    fails on exactly this shape of phases: y1-y4, then x1-x4, then y5-y8 before x5.

    Depth 3: three ordering constraints (y4 < x1, x4 < y5, y8 < x5), each held over a long
    phase: the random pump must decide the same way at every step of each phase (about
    2^-24), PCT needs the right first priorities and its two change points at the two phase
    ends (about 1/(n·k²)).
    """
    parts = await _two_writers(rt, 8)
    if (_before(parts, "y4", "x1") and _before(parts, "x4", "y5")
            and _before(parts, "y8", "x5")):
        raise AssertionError(f"phases y, x, y: {parts}")
    return tuple(parts)
