"""Find a depth-3 race with PCT, shrink its schedule, save it, and replay it from the file.

Two writer STAs, ``x`` and ``y``, each write three records, one call at a time, to a log
object in a third STA. The planted bug needs three orderings at once: ``y1`` before ``x1``,
``x2`` before ``y2``, and ``y3`` before ``x3`` (a depth-3 bug in PCT's sense); the default
schedule (oldest message first) never shows it. ``explore(strategy="pct", depth=3)`` gives the
apartments random priorities and two change points per run; a run that raises stops the
exploration, and ``explore`` raises it again with notes naming the seed and the file holding
the shrunk schedule — the fewest preemptions (decisions other than "oldest message first")
that still fail. ``replay`` runs the scenario under that file's schedule and fails the same way.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import anyio

import comsim
from comsim.testing import Schedule, explore, replay


class ILog(comsim.Interface):
    async def Write(self, record: str) -> None: ...


class Log(comsim.CoClass, ILog):
    def __init__(self, records: list[str]) -> None:
        super().__init__()
        self.records = records

    async def Write(self, record: str) -> None:
        self.records.append(record)


async def scenario(rt: comsim.Runtime) -> tuple[str, ...]:
    x, y, store = [await rt.create_sta(n) for n in ("x", "y", "store")]
    records: list[str] = []

    async def serve() -> comsim.MarshalStream:
        return comsim.marshal_interface(Log(records), ILog, flags=comsim.MSHLFLAGS.TABLESTRONG)

    stream = await store.run(serve)

    async def writer(name: str) -> None:
        log = comsim.unmarshal_interface(stream, ILog)
        for i in (1, 2, 3):
            await log.Write(f"{name}{i}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(x.run, writer, "x")
        tg.start_soon(y.run, writer, "y")

    def before(a: str, b: str) -> bool:
        return records.index(a) < records.index(b)

    if before("y1", "x1") and before("x2", "y2") and before("y3", "x3"):
        raise AssertionError(f"crossed records: {records}")
    return tuple(records)


def main() -> dict[str, Any]:
    lines: list[str] = []

    def say(text: str) -> None:
        print(text)
        lines.append(text)

    default = replay(scenario, Schedule([], seed=0))
    say(f"the default schedule: {default}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            explore(scenario, range(5000), strategy="pct", depth=3, save_dir=tmp)
        except AssertionError as exc:
            notes = getattr(exc, "__notes__", [])
            seed = int(re.search(r"seed (\d+)", notes[0]).group(1))  # type: ignore[union-attr]
            path = Path(re.search(r"saved to (\S+):", notes[1]).group(1))  # type: ignore[union-attr]
            say(f"PCT (depth 3) found it at seed {seed}: {exc}")
        else:
            raise SystemExit("PCT found no crossed records in 5000 runs")
        saved = Schedule.load(path)
        say(f"shrunk schedule: {saved.preemptions} preemptions in {len(saved.decisions)} "
            f"decisions, saved to {path.name}")
        again = replay(scenario, saved)
        say(f"replayed from the file: {again}")
    return {"default": default, "seed": seed, "preemptions": saved.preemptions,
            "replayed": again, "lines": lines}


if __name__ == "__main__":
    main()
