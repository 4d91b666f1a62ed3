"""Fuzz comsim with random COM programs (tests/fuzz/programs.py), the long run.

    python scripts/fuzz.py --programs 2000 --runtime both     # 2000 seeds per runtime
    python scripts/fuzz.py --seed 384 --runtime deterministic --show   # replay one, print it

Each program mixes the rules of calls and cancellation (R2-R32) with the neutral apartment
(R5), activation (R33), identity (R34) and reference-counted lifetimes (R7), and calls on
objects of their own whose call objects are released in flight, on any thread, around their
client's shutdown, each object checked to be released at the end (R25, R18, R12, R7); see the
docstrings of tests/fuzz/programs.py, tests/fuzz/lifetimes.py and tests/fuzz/fresh.py. And
message filters at their edges (MessagePending's WAITNOPROCESS and CANCELCALL, retry delays
ended by cancels, hundreds of rejected calls queued; tests/fuzz/filters.py), call objects used
by several tasks at once (tests/fuzz/callobjs.py) and values that fail to cross
(tests/fuzz/values.py).

Prints progress, then per runtime: programs run, programs with violations, hangs and
same-seed replay differences (deterministic), and every failing seed with what broke. Exits 1
on any violation, hang or replay difference.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fuzz.programs import Report, describe, generate, run_program  # noqa: E402

#: real seconds a worker may take for one program before the pool is given up as hung (the
#: program's own watchdog should have ended it long before)
STUCK = 60.0


def _one(job: tuple[int, str, bool, bool]) -> Report:
    seed, runtime, cancellation, replay = job
    try:
        return run_program(seed, runtime, cancellation=cancellation, replay=replay)
    except Exception as exc:  # the harness itself failed: a violation too, with its seed
        return Report(seed, runtime, violations=[f"the interpreter raised {exc!r}"])


def _run(runtime: str, seeds: range, args: argparse.Namespace) -> list[Report]:
    jobs = [(s, runtime, not args.no_cancellation, not args.no_replay) for s in seeds]
    reports: list[Report] = []
    t0 = time.perf_counter()
    bad = 0

    def progress(r: Report) -> None:
        nonlocal bad
        reports.append(r)
        if not r.ok:
            bad += 1
            print(f"\n{r}", flush=True)
        n = len(reports)
        if n % 50 == 0 or n == len(jobs):
            print(f"  [{runtime}] {n}/{len(jobs)} programs, {bad} failing, "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)

    if args.workers <= 1:
        for job in jobs:
            progress(_one(job))
        return reports
    # maxtasksperchild: a worker whose program hung (its loop abandoned) does not live on
    pool = multiprocessing.get_context("spawn").Pool(args.workers, maxtasksperchild=200)
    try:
        it = pool.imap_unordered(_one, jobs)  # chunksize 1: next(timeout) works
        for _ in jobs:
            try:
                progress(it.next(timeout=STUCK))
            except multiprocessing.TimeoutError:
                done = {r.seed for r in reports}
                for s in seeds:
                    if s not in done:
                        reports.append(Report(s, runtime,
                                              hang=f"worker stuck for {STUCK} s (pool given up)"))
                print(f"  [{runtime}] a worker is stuck; the remaining programs count as hangs",
                      flush=True)
                pool.terminate()
                return reports
    finally:
        pool.terminate()
        pool.join()
    return reports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--programs", type=int, default=300, help="programs per runtime")
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--seed", type=int, help="run this one seed")
    p.add_argument("--runtime", choices=("threaded", "deterministic", "both"), default="both")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--no-cancellation", action="store_true",
                   help="programs without any cancel (scopes, Cancel, CoCancelCall)")
    p.add_argument("--no-replay", action="store_true",
                   help="deterministic: do not run each program twice to compare traces")
    p.add_argument("--show", action="store_true", help="print the program(s) first")
    args = p.parse_args(argv)
    seeds = range(args.seed, args.seed + 1) if args.seed is not None else range(
        args.start, args.start + args.programs)
    if args.seed is not None:
        args.workers = 1
    runtimes = ("threaded", "deterministic") if args.runtime == "both" else (args.runtime,)
    if args.show:
        for s in seeds:
            print(describe(generate(s, cancellation=not args.no_cancellation)))
    failed = False
    summary = []
    t_all = time.perf_counter()
    for runtime in runtimes:
        t0 = time.perf_counter()
        print(f"{runtime}: {len(seeds)} programs from seed {seeds.start}", flush=True)
        reports = _run(runtime, seeds, args)
        secs = time.perf_counter() - t0
        violating = [r for r in reports if r.violations]
        hangs = [r for r in reports if r.hang]
        replays = [r for r in reports if r.replay]
        ops = sum(r.ops for r in reports)
        failed |= bool(violating or hangs or replays)
        summary.append(
            f"{runtime:>13}: {len(reports)} programs ({ops} ops) in {secs:.1f} s; "
            f"violations {len(violating)}, hangs {len(hangs)}, replay differences "
            f"{len(replays)}"
            + (f"\n{'':>15}failing seeds: {sorted(r.seed for r in reports if not r.ok)}"
               if not all(r.ok for r in reports) else ""))
    print("\n".join(["", "summary:", *summary,
                     f"{'total':>13}: {time.perf_counter() - t_all:.1f} s"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
