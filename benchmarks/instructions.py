"""Exploration's cost per run in machine instructions: figures a noisy machine cannot move.

    python benchmarks/instructions.py            # needs valgrind (callgrind) on the PATH
    python benchmarks/instructions.py --runs 200 # fewer runs per count (faster, as exact)

Wall-clock runs per second (``benchmarks/exploration.py``) move by a third from one minute to
the next on a shared virtual machine. ``valgrind --tool=callgrind`` counts the instructions a
process executes instead, the same count for the same program whatever else the machine does.
Each figure here is a difference of two counts of one driver process (after the same warm-up:
``--runs`` runs, then none), divided by ``--runs``: the instructions of one run, with start-up
and imports cancelled out.

- ``explore_cancel_race``: one run of ``explore`` on ``examples/explore_cancel_race.py`` (the
  random strategy, the schedule recorded, as ``exploration.py`` times it);
- ``... without recording``: the same with the pump's ``decisions`` list replaced by a list
  that keeps nothing (its ``append`` is a Python method, so this overstates what recording
  saves);
- ``an empty scenario``: ``explore`` of ``async def scenario(rt): return 1``, comsim's floor;
- the raw baseline: ``asyncio.run`` of an empty coroutine, the least a run on a fresh loop
  could cost.

``--throughput`` counts, the same way, the instructions per call of ``seam.py``'s third figure
(16 callers in the MTA calling one STA on the threaded runtime) and of its raw baseline (two
loops whose server runs each call as a task), both threads together. Callgrind counts the
process's own instructions, not the kernel's: the wake-ups and thread switches that comsim's
bursts save are not in it, so this is the Python each call costs, the figure that a change to
the call path moves, which wall-clock rounds on a shared machine cannot show. (Less exact than
the single-threaded counts: how the two threads interleave under valgrind moves the number of
wake-ups per call, and the figure by a few percent from one count to the next.)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WARM = 100


class _Forget(list[Any]):
    """A decisions list that records nothing."""

    def append(self, item: Any) -> None:
        pass


def _child(kind: str, runs: int) -> None:
    """The driver valgrind counts: ``WARM`` runs, then ``runs`` more, of ``kind``."""
    sys.path[:0] = [str(ROOT), str(ROOT / "examples")]
    import explore_cancel_race  # type: ignore[import-not-found]

    from comsim.testing import explore

    async def race(rt: Any) -> Any:
        return await explore_cancel_race.scenario(rt)

    async def race_unrecorded(rt: Any) -> Any:
        rt._transport.decisions = _Forget()
        return await explore_cancel_race.scenario(rt)

    async def empty(rt: Any) -> int:
        return 1

    async def nothing() -> None:
        pass

    if kind == "asyncio.run":
        for _ in range(WARM + runs):
            asyncio.run(nothing())
        return
    if kind in ("tput", "tput_raw"):  # ``runs`` calls (a multiple of 16)
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import seam  # type: ignore[import-not-found]

        if kind == "tput":
            asyncio.run(seam.comsim_throughput(runs))
        else:
            seam.raw_throughput(runs)
        return
    scenario = {"race": race, "race_unrecorded": race_unrecorded, "empty": empty}[kind]
    explore(scenario, range(WARM))
    if runs:
        explore(scenario, range(WARM, WARM + runs))


def _count(kind: str, runs: int) -> int:
    """Instructions executed by the driver process for ``kind`` with ``runs`` runs."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--child", kind, str(runs)],
        capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", out.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no count:\n{out.stderr[-2000:]}")
    return int(match.group(1))


def per_run(kind: str, runs: int) -> float:
    return (_count(kind, runs) - _count(kind, 0)) / runs


def per_call(kind: str, calls: int) -> float:
    """Instructions per call: two counts (``calls`` and three times as many), so that start-up
    and the set-up of the apartments cancel out."""
    return (_count(kind, 3 * calls) - _count(kind, calls)) / (2 * calls)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=500, help="runs per count")
    ap.add_argument("--throughput", action="store_true",
                    help="instructions per call of the 16-caller throughput benchmark instead")
    ap.add_argument("--calls", type=int, default=3200, help="calls per throughput count")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "RUNS"), help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.child:
        _child(ns.child[0], int(ns.child[1]))
        return {}
    if shutil.which("valgrind") is None:
        raise SystemExit("benchmarks/instructions.py needs valgrind (callgrind) on the PATH")
    if ns.throughput:
        calls = max(16, ns.calls // 16 * 16)
        ours, raw = per_call("tput", calls), per_call("tput_raw", calls)
        print(f"instructions per call, 16 MTA callers -> one STA ({calls} and {3 * calls} "
              "calls per count, callgrind, both threads, user space only):")
        print(f"  comsim                         {ours:>12,.0f}  ({ours / raw:.2f}x)")
        print(f"  raw: two loops, a task a call  {raw:>12,.0f}")
        return {"tput": ours, "tput_raw": raw}
    figures = {kind: per_run(kind, ns.runs)
               for kind in ("race", "race_unrecorded", "empty", "asyncio.run")}
    raw = figures["asyncio.run"]
    print(f"instructions per run ({ns.runs} runs per count, callgrind):")
    print(f"  explore_cancel_race            {figures['race']:>12,.0f}  "
          f"({figures['race'] / raw:.2f}x an empty asyncio.run)")
    print(f"  ... without recording          {figures['race_unrecorded']:>12,.0f}  "
          f"(recording costs {figures['race'] / figures['race_unrecorded'] - 1:+.2%})")
    print(f"  an empty scenario              {figures['empty']:>12,.0f}  "
          f"({figures['empty'] / raw:.2f}x)")
    print(f"  raw: an empty asyncio.run      {raw:>12,.0f}")
    return figures


if __name__ == "__main__":
    main()
