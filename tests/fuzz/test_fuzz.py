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
runtime. And the features of R5, R7, R33 and R34: a server object in the NA (sync and
Begin_/Finish_ calls into it, cancels, nested calls out of it), units that enter the NA by
``rt.nta.run`` from STAs and the MTA, CoCreateInstance of every threading model from STAs, the
MTA, the NA and no apartment (placement, object or proxy, IUnknown identity, the count down to
0, CO_E_OBJNOTCONNECTED after it), and identity/lifetime scenarios (tests/fuzz/lifetimes.py):
one object marshalled NORMAL, TABLESTRONG, TABLEWEAK and into the GIT, brought into one
apartment by every route, released in random orders, each step checked against a model of R7
and R34. And NA code entered from no apartment (R5) making every kind of call, and calls on
objects of their own (tests/fuzz/fresh.py): sync and through call objects, from an STA of their
own, NA code on it, the MTA, NA code on it and NA code from no apartment, call objects released
in flight on their own thread, from no apartment or from another OS thread (R25, R12), the
client's STA shut down before, during or after (R18), and every such object released once
nothing references it (R7: nothing leaks). And R16's edges: MessagePending answering
WAITNOPROCESS and CANCELCALL in the programs' STAs, RetryRejectedCall giving up as DWORDs or
retrying late, and scenarios of their own: a retry delay (endless ones included) ended by
CoCancelCall, a task's cancel, a cancelled Apartment.run or a unit MessagePending decides
(tests/fuzz/filters.py), hundreds of calls queued at a rejecting STA; call objects used by
several tasks at once: two Finish_, the last Release during Finish_ or Cancel(t), a cancelled
Finish_ during Cancel(no limit) (tests/fuzz/callobjs.py, R21-R25, R28, R32); values whose
pickling hooks raise (BaseException included), that fail to unpack part-way, and proxies
passed from the wrong apartment (tests/fuzz/values.py, R11, R12, R7).
"""

from __future__ import annotations

import pytest

from .programs import check_many

PROGRAMS = 35  # per runtime: about the time 40 took before the fresh ops and NA units from none
CHUNK = 5  # short tests: each well inside the per-test timeout on a loaded machine
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
    # R2 R13 R14 R15 R16 R17 R18 R21 R22 R24 R25 R28 R29 R30 R31 R32; same seed, same trace;
    # R5 R6 R7 R8 R9 R10 R33 R34
    _assert_clean(seeds, "deterministic")


@pytest.mark.parametrize("seeds", SEEDS, ids=_ids)
def test_fuzz_threaded(seeds: range) -> None:
    # R2 R3 R13 R14 R15 R16 R17 R18 R21 R22 R24 R25 R28 R30 R31 R32; R5 R6 R7 R8 R9 R10 R33 R34
    _assert_clean(seeds, "threaded")


@pytest.mark.parametrize("runtime", ["deterministic", "threaded"])
def test_fuzz_without_cancellation(runtime: str) -> None:
    # R2 R13 R14 R15 R16 R17 R18 R21 R22 R24 R25: the same programs with no cancel at all
    _assert_clean(range(1000, 1010), runtime, cancellation=False)


def test_the_generator_covers_the_new_features() -> None:
    # R5 R7 R33 R34: the features reach the programs (checked on the programs alone: cheap)
    from .programs import MODEL_NAMES, NOAPT, generate

    activations: set[tuple[str, str | None]] = set()
    steps: set[str] = set()
    na_units = na_targets = na_async = 0
    for seed in range(300):
        prog = generate(seed)
        for c in prog.calls.values():
            if c.kind == "activate":
                place = ("none" if c.caller == NOAPT else "NA" if c.caller == prog.na
                         else "MTA" if c.caller == prog.mta else "STA")
                activations.add((place, c.model))
            elif c.target == prog.na:
                na_targets += 1
                na_async += c.kind == "async"
        na_units += sum(u.host is not None for u in prog.units)
        steps.update(step[0] for life in prog.lives for step in life.steps)
    places = ("STA", "MTA", "NA", "none")
    assert activations == {(p, m) for p in places for m in MODEL_NAMES}
    assert steps == {"unmarshal", "missing", "release", "qi", "call", "identity", "remarshal",
                     "release_data", "locks", "disconnect", "release_all"}
    assert na_units > 0 and na_targets > 0 and na_async > 0


def test_the_generator_covers_na_code_and_fresh_objects() -> None:
    # R5 R25 R18 R12 R7: NA code from no apartment makes every kind of call and releases call
    # objects in flight; the fresh-object ops reach every place, end and shutdown point
    from .fresh import CLIENTS, ENDS, SHUTS
    from .programs import NOAPT, generate

    outside: set[str] = set()
    places: set[tuple[str, str]] = set()
    ends: set[tuple[str, str, bool]] = set()
    shuts: set[tuple[str, str | None]] = set()
    gifts = races = outers = 0
    for seed in range(300):
        prog = generate(seed)
        for u in prog.units:
            if u.host == NOAPT:
                outside.update("release" if a[1].release else a[1].kind
                               for a in u.actions if a[0] == "call")
        for f in prog.fresh:
            places.add((f.client, f.kind))
            if f.kind == "async":
                ends.add((f.client, f.end, f.lone))
            if f.own_sta:
                shuts.add((f.client, f.shut))
            gifts += f.gift
            races += bool(f.busy and f.later == f.busy and f.jitter and f.shut == "host_during")
            outers += f.outer
    assert outside == {"sync", "async", "release", "activate"}
    assert places == {(c, k) for c in CLIENTS for k in ("sync", "async")}
    assert ends == {(c, e, lone) for c in CLIENTS for e in ENDS for lone in (False, True)}
    assert shuts == {(c, s) for c in ("sta", "na_sta") for s in (None, *SHUTS)}
    assert gifts > 0 and races > 0 and outers > 0


def test_the_generator_covers_filters_call_objects_and_values() -> None:
    # R16 R21 R22 R25 R28 R31 R32 R11 R12 R7: the scenarios of their own reach every route,
    # kind and MessagePending answer (checked on the programs alone: cheap)
    import comsim

    from .callobjs import KINDS as CALL_KINDS
    from .filters import ROUTES, FloodSpec, RetrySpec
    from .programs import generate
    from .values import KINDS as VALUE_KINDS

    routes: set[tuple[str, int, bool]] = set()
    kinds: set[str] = set()
    pending: set[int] = set()
    floods = nested = 0
    for seed in range(400):
        prog = generate(seed)
        for answers in prog.pending.values():
            pending.update(answers)
        for x in prog.extras:
            if isinstance(x, RetrySpec):
                routes.add((x.route, x.pending, x.endless))
                nested += x.nested
            elif isinstance(x, FloodSpec):
                floods += 1
            else:
                kinds.add(x.kind)
    assert {r for r, _, endless in routes if endless} == set(ROUTES) - {"none"}
    assert {(r, p) for r, p, _ in routes} >= {("unit", p) for p in (0, 1, 2)}
    assert kinds == set(CALL_KINDS) | set(VALUE_KINDS)
    assert pending == {comsim.PENDINGMSG_CANCELCALL, comsim.PENDINGMSG_WAITNOPROCESS,
                       comsim.PENDINGMSG_WAITDEFPROCESS}
    assert floods > 0 and nested > 0


def test_no_message_filter_holds_a_creation_back() -> None:
    # R33 R16 R2: a class of no threading model created from another thread makes its object
    # in a unit of the main STA (s0); s0's MessagePending answering WAITNOPROCESS would hold
    # that unit while s0 waits in a call whose server may sit below the creator, nested on the
    # creator's STA (last in, first out): a deadlock, as in COM (tests/testing/test_deadlock.py,
    # test_creation_held_by_the_main_sta_below_its_call_back). Seed 606085 hung so, threaded.
    import comsim

    from .programs import NOAPT, Program, generate

    def creates_in_s0(prog: Program) -> bool:
        return any(c.kind == "activate" and c.model is None and c.caller not in (0, NOAPT)
                   for c in prog.calls.values())

    assert creates_in_s0(generate(606085))
    for seed in (606085, *range(400)):
        prog = generate(seed)
        if creates_in_s0(prog):
            assert comsim.PENDINGMSG_WAITNOPROCESS not in prog.pending.get(0, ()), seed


def test_the_generator_is_deterministic() -> None:
    from .programs import describe, generate

    assert describe(generate(7)) == describe(generate(7))
    assert describe(generate(7)) != describe(generate(8))
