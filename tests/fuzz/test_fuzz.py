"""The fuzz suite's default budget: random COM programs on both runtimes (tests/fuzz/programs.py).

Each test runs a chunk of seeds; a failure lists every broken invariant with its seed, and
``python scripts/fuzz.py --seed N --runtime R --show`` replays one program and prints it.
The long run is ``python scripts/fuzz.py --programs 2000 --runtime both``.

Rules exercised by every program (the checker names the rule of each violation):
R2 (STA units, re-entrancy during COM waits, LIFO), R3 (MTA), R13 (sync calls), R14 (server
faults), R15 (nested calls), R16 (message filters: reject, retry, give up), R17
(CoDisconnectObject), R18 (apartment shutdown, runtime exit: nothing hangs, nothing left),
R19-R22 (call objects, Begin_/Finish_), R21 (RPC_E_CALL_PENDING), R24 (outer.Signal once),
R25 (Release without Finish_), R27/R28 (ICancelMethodCalls.Cancel), R29/R30 (CoTestCancel, both
cancel policies), R31 (CoEnableCallCancellation, CoCancelCall), R32 (task cancellation of
callers of sync calls, Finish_ and Apartment.run), and same-seed replay of the deterministic
runtime.
"""

from __future__ import annotations

import pytest

from .programs import check_many

PROGRAMS = 40  # per runtime
CHUNK = 10
SEEDS = [range(k, k + CHUNK) for k in range(0, PROGRAMS, CHUNK)]


def _ids(r: range) -> str:
    return f"seeds{r.start}-{r.stop - 1}"


def _assert_clean(seeds: range, runtime: str, **kw: bool) -> None:
    reports = check_many(seeds, runtime, **kw)
    assert len(reports) == len(seeds)
    bad = [str(r) for r in reports if not r.ok]
    assert not bad, f"{len(bad)} of {len(reports)} programs broke an invariant:\n" + "\n".join(
        bad)


@pytest.mark.parametrize("seeds", SEEDS, ids=_ids)
def test_fuzz_deterministic(seeds: range) -> None:
    # R2 R13 R14 R15 R16 R17 R18 R21 R22 R24 R25 R28 R29 R30 R31 R32; same seed, same trace
    _assert_clean(seeds, "deterministic")


@pytest.mark.parametrize("seeds", SEEDS, ids=_ids)
def test_fuzz_threaded(seeds: range) -> None:
    # R2 R3 R13 R14 R15 R16 R17 R18 R21 R22 R24 R25 R28 R30 R31 R32
    _assert_clean(seeds, "threaded")


@pytest.mark.parametrize("runtime", ["deterministic", "threaded"])
def test_fuzz_without_cancellation(runtime: str) -> None:
    # R2 R13 R14 R15 R16 R17 R18 R21 R22 R24 R25: the same programs with no cancel at all
    _assert_clean(range(1000, 1010), runtime, cancellation=False)


def test_the_generator_is_deterministic() -> None:
    from .programs import describe, generate

    assert describe(generate(7)) == describe(generate(7))
    assert describe(generate(7)) != describe(generate(8))
