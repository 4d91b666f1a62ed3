"""Random COM programs for comsim: a generator, an interpreter for both runtimes and the
invariants every program must keep.

A program is plain data drawn from ``random.Random(seed)``: 2-4 STAs and the MTA, one server
object (``Node``) in each, with a cancel policy per apartment ("interrupt" or "cooperative",
R30), a message filter on some STAs that rejects some incoming calls and retries or gives up
(R16), ``CoEnableCallCancellation`` on some STA threads (R31), maybe an STA shut down at a
chosen moment (R18), and a few client units (``Apartment.run``, R2), each a list of actions:

- a synchronous call (R13), sometimes under ``anyio.move_on_after`` (task cancellation, R32);
- an asynchronous call (R19-R22): ``CreateCall(AsyncINode[, outer])``, ``Begin_Op``, sometimes
  a second ``Begin_Op`` that must fail with ``RPC_E_CALL_PENDING`` (R21), sometimes
  ``ICancelMethodCalls.Cancel(t)`` (R27, R28), then ``Finish_Op`` (sometimes under a cancel
  scope, R32) or ``Release`` without ``Finish_`` (R25);
- ``CoCancelCall(thread of an STA, t)`` (R31);
- a sleep.

Each call carries a server plan that ``Node.Op`` interprets in the server apartment: sleeps
(simulated work; virtual time on the deterministic runtime), shielded sleeps, ``CoTestCancel``
polls (R30), nested synchronous calls to other apartments, calls back into the caller
included (re-entrancy, R2, R15), ``CoDisconnectObject`` of itself (R17), and raising
``COMError(hr)`` or a plain exception (R14). A nested call's failure may be re-raised to the
caller (propagated) or swallowed.

Every call, top level or nested, has an op id; the interpreter logs each op's outcome once.
From the program alone the checker derives which outcomes COM-RULES allows for each op (see
``_analyse``), and checks: exactly one outcome per op that started, every top-level op of a
unit that ended normally started, values are the server's, HRESULTs are allowed ones,
second ``Begin_`` gives ``RPC_E_CALL_PENDING``, ``Cancel`` gives S_OK (then ``Finish_`` fails
with ``RPC_E_CALL_CANCELED``) or ``RPC_E_CALL_COMPLETE``, ``outer.Signal()`` exactly once per
finished call and on the caller's apartment (R24), no hang (a virtual-time bound inside and a
real-time watchdog outside), no ``comsim-*`` thread and no task left after the runtime, and on
the deterministic runtime the same seed gives the same trace and outcomes. There, a program of
an odd seed has every message take a seeded 0-3 ms of virtual time (``Runtime.set_latency``),
so that arrivals spread among its sleeps, time-outs and grace periods as they do on threads;
under either, the pump may deliver any pending message first.

The features of R5, R33, R34 and R7 go into the same programs. The NA (index ``n_sta + 1``)
holds a ``Node`` too: calls into it (sync, ``Begin_``/``Finish_``, cancels, nested calls out of
it) run on the caller's thread, so ``_analyse`` follows each call's *thread* (its unit's, or its
server's, the caller's own again through the NA) for R31's counts, ``CoCancelCall`` and R18.
Some units enter the NA by ``rt.nta.run`` from an STA or the MTA. ``("call", spec)`` with
``spec.kind == "activate"`` is ``CoCreateInstance`` of a class of each threading model, from a
unit's place, the NA entered from no apartment, or no apartment (``CO_E_NOTINITIALIZED``):
where the object went (R33), object or proxy, a second route and ``IUnknown`` identity (R34),
its counts down to 0 and then ``CO_E_OBJNOTCONNECTED`` (R34). ``Program.lives`` are
identity/lifetime scenarios (``lifetimes.py``), each step checked against a model of R7/R34.
Some units run in the NA entered from no apartment (``host == NOAPT``: ``await
rt.nta.run(...)`` on the host's loop, R5), with every action above. ``Program.fresh`` are calls
on objects of their own (``fresh.py``): NA code on an STA, on the MTA and from no apartment
(and plain STA and MTA code) calling synchronously or through a call object, released with its
call in flight on its own thread or handed to another (no apartment; another OS thread on the
threaded runtime), its STA shut down at chosen points relative to the reply (R25, R18, R12);
once the program is over every such object must be back to its creator's one reference (R7:
nothing leaks). Also checked: nothing asyncio reports (a task destroyed while pending) once the
runtime exited.

``run_program(seed, runtime)`` runs one program; ``check_many(seeds, runtime)`` many;
``describe(program)`` prints one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio

import comsim
from comsim import hresult as hr
from comsim.testing import VirtualTimeLoop, capture_trace

from .callobjs import CallObjSpec, generate_callobj
from .filters import PENDING_NAMES, FloodSpec, RetrySpec, generate_flood, generate_retry, gives_up
from .fresh import (
    FreshRun,
    FreshSpec,
    Outer,
    check_fresh,
    describe_fresh,
    generate_fresh,
    generate_race,
    settle,
)
from .lifetimes import LifeRun, LifeSpec, describe_life, generate_life
from .values import ValueSpec, generate_value

APP_CODE = -2147220991  # 0x80040201, an application's own failure code
APP_ERRORS = (hr.E_FAIL, hr.E_INVALIDARG, APP_CODE)
SLEEPS = (0.0, 0.0, 0.001, 0.003, 0.01, 0.02)
GONE = frozenset({hr.RPC_E_DISCONNECTED, hr.CO_E_OBJNOTCONNECTED})
NOAPT = -2  # "apartment index" of code in no apartment
HOSTSTA = -3  # ... of the host STA (R33)
MODEL_NAMES: tuple[str | None, ...] = ("Apartment", "Free", "Both", "Neutral", None)
#: a caller's RetryRejectedCall answers beyond the first draw (R16): DWORDs that give up, a
#: late retry
RETRY_MORE = ((0xFFFFFFFF,), (2**32,), (10**400,), (0, 0xFFFFFFFF), (300, -1, -1),
              (99, 100, -(2**40)))
#: MessagePending's answers (R16), drawn in turn
PENDING_MORE = ((comsim.PENDINGMSG_WAITNOPROCESS,), (comsim.PENDINGMSG_CANCELCALL,),
                (comsim.PENDINGMSG_WAITNOPROCESS, comsim.PENDINGMSG_WAITDEFPROCESS),
                (comsim.PENDINGMSG_CANCELCALL, comsim.PENDINGMSG_WAITDEFPROCESS,
                 comsim.PENDINGMSG_WAITNOPROCESS))
#: a program's bound: virtual seconds (deterministic) / real seconds (threaded), inside it
VIRTUAL_LIMIT = 300.0
REAL_LIMIT = 6.0
#: the watchdog outside: real seconds after which a program's loop is stopped
WATCHDOG = {"deterministic": 6.0, "threaded": 12.0}


def expected(op: int) -> int:
    """What the server's Op returns for tag ``op``."""
    return op * 3 + 1


# =========================================================================== the program
@dataclass
class CallSpec:
    """One call: a unit's, or one a server method makes (nested, ``parent`` set)."""

    op: int
    kind: str  # "sync" | "async" | "activate" (R33: CoCreateInstance, then calls)
    caller: int  # apartment index of the calling code (NOAPT: none)
    target: int
    plan: list[tuple[Any, ...]]  # server steps; nested calls as ("call", CallSpec, propagate)
    parent: int | None = None
    unit: int | None = None
    scope: float | None = None  # sync: move_on_after around the call; async: around Finish_
    cancel: float | None = None  # async: Cancel(t) before Finish_
    cancel_delay: float = 0.0
    release: bool = False  # async: Release without Finish_
    second_begin: str | None = None  # "after_begin" | "after_cancel"
    outer: bool = False
    model: str | None = None  # activate: the class's threading model
    host: int | None = None  # activate from the NA outside any unit: the thread under it
    # --- derived by _analyse
    caller_apt: int | None = None  # the apartment whose thread runs the calling code (R5)
    told: bool = False  # the server may learn of a cancel (CoTestCancel, interrupt)
    allowed: set[int] = field(default_factory=set)  # failure HRESULTs allowed
    may_cancelled: bool = False  # the calling task may be cancelled (CancelledError)
    propagated_canceled: bool = False  # RPC_E_CALL_CANCELED may come from a nested call
    orphan: bool = False  # an ancestor's caller may stop waiting: the runtime's exit (R18)
    #                       may then meet this call in flight, or before it starts

    def wire(self) -> list[tuple[Any, ...]]:
        """The plan as plain tuples, as it travels in the call (R11)."""
        out: list[tuple[Any, ...]] = []
        for step in self.plan:
            if step[0] == "call":
                child, propagate = step[1], step[2]
                out.append(("call", child.op, child.target, child.wire(), propagate))
            else:
                out.append(step)
        return out


@dataclass
class UnitSpec:
    index: int
    apt: int
    enable: bool  # MTA unit: CoEnableCallCancellation first
    #: ("call", CallSpec) | ("sleep", t) | ("cocancel", op, sta, seconds, delay)
    actions: list[tuple[Any, ...]]
    delay: float = 0.0  # the unit is sent to its apartment this late
    deadline: float | None = None  # its caller cancels Apartment.run after this long (R32)
    host: int | None = None  # a unit in the NA: the apartment that enters it (NOAPT: none, R5)


@dataclass
class Program:
    seed: int
    n_sta: int
    policies: list[str]  # per apartment index; the MTA is index n_sta
    filters: dict[int, tuple[float, tuple[int, ...]]]  # sta -> (reject probability, retry answers)
    enabled: set[int]  # STAs whose thread called CoEnableCallCancellation
    units: list[UnitSpec]
    shutdown: tuple[int, float] | None
    calls: dict[int, CallSpec]
    cocancels: dict[int, int]  # op -> target sta
    disconnects: set[int]  # apartments whose object may CoDisconnectObject itself
    dying: set[int] = field(default_factory=set)  # STAs that may shut down (R18)
    #: activations from no apartment (CO_E_NOTINITIALIZED) and from the NA entered from no
    #: apartment, run beside the units
    outside: list[CallSpec] = field(default_factory=list)
    lives: list[LifeSpec] = field(default_factory=list)  # identity and lifetime scenarios
    fresh: list[FreshSpec] = field(default_factory=list)  # calls on objects of their own
    #: sta -> MessagePending's answers, drawn in turn by a seeded rng (R16); absent: always
    #: WAITDEFPROCESS
    pending: dict[int, tuple[int, ...]] = field(default_factory=dict)
    #: scenarios of their own: message filters at their edges (filters.py), call objects used
    #: by several tasks (callobjs.py), values that fail to cross (values.py)
    extras: list[RetrySpec | FloodSpec | CallObjSpec | ValueSpec] = field(default_factory=list)

    @property
    def mta(self) -> int:
        return self.n_sta

    @property
    def na(self) -> int:
        return self.n_sta + 1

    def name(self, i: int | None) -> str:
        if i is None or i < 0:
            return "HostSTA" if i == HOSTSTA else "none"
        return "MTA" if i == self.n_sta else "NA" if i == self.n_sta + 1 else f"s{i}"

    def unit_apt(self, u: UnitSpec) -> int | None:
        """The apartment whose thread runs the unit (its host, for a unit in the NA; None for
        one entered from no apartment)."""
        if u.host == NOAPT:
            return None
        return u.host if u.host is not None else u.apt


def generate(seed: int, *, cancellation: bool = True) -> Program:
    """A random program from ``seed``. ``cancellation=False`` leaves out every cancel (scopes,
    Cancel, CoCancelCall); shutdowns and disconnects stay."""
    rng = random.Random(seed)
    n_sta = rng.randint(2, 4)
    n_apt = n_sta + 1  # the STAs and the MTA: apartments with threads
    na = n_sta + 1  # the neutral apartment (R5): a server and a place client code enters
    n_all = n_sta + 2
    policies = [rng.choice(("interrupt", "cooperative")) for _ in range(n_all)]
    filters: dict[int, tuple[float, tuple[int, ...]]] = {}
    for s in range(n_sta):
        if rng.random() < 0.35:
            retry = rng.choice(((-1,), (0,), (0, 150), (-1, 0), (100, 250), (-1, 120)))
            filters[s] = (rng.choice((0.0, 0.3, 0.5)), retry)
    enabled = {s for s in range(n_sta) if cancellation and rng.random() < 0.6}
    shutdown = None
    if rng.random() < 0.25:
        shutdown = (rng.randrange(n_sta), rng.choice((0.0, 0.002, 0.01, 0.03)))
    calls: dict[int, CallSpec] = {}
    cocancels: dict[int, int] = {}
    disconnects: set[int] = set()
    dying: set[int] = {shutdown[0]} if shutdown is not None else set()
    counter = iter(range(1, 10_000))

    def plan_for(server: int, depth: int, caller: int, unit: int, parent: int
                 ) -> list[tuple[Any, ...]]:
        plan: list[tuple[Any, ...]] = []
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            r = rng.random()
            if r < 0.3:
                plan.append(("sleep", rng.choice(SLEEPS)))
            elif r < 0.42:
                plan.append(("shield", rng.choice(SLEEPS)))
            elif r < 0.6:
                plan.append(("poll", rng.randint(1, 4), rng.choice((0.0, 0.001, 0.005))))
            elif r < 0.64:
                disconnects.add(server)
                plan.append(("disconnect",))
            elif r < 0.655 and server < n_sta and server not in keep:
                dying.add(server)
                plan.append(("shutdown_self",))  # R18: from inside, in a server method
            elif depth < 2:
                # a nested call: often back into the apartment that called us (re-entrancy)
                others = [a for a in range(n_all) if a != server]
                target = caller if (caller != server and rng.random() < 0.5) else rng.choice(
                    others)
                child = CallSpec(next(counter), "sync", server, target, [], parent=parent,
                                 unit=unit)
                calls[child.op] = child
                child.plan = plan_for(target, depth + 1, server, unit, child.op)
                plan.append(("call", child, rng.random() < 0.5))
            else:
                plan.append(("sleep", rng.choice(SLEEPS)))
        r = rng.random()
        if r < 0.1:
            plan.append(("raise_com", rng.choice(APP_ERRORS)))
        elif r < 0.16:
            plan.append(("raise_exc",))
        return plan

    #: STAs that must not shut down (those running identity/lifetime steps), and the targets
    #: CoCancelCall may have; both set for the units drawn after the lifetimes
    keep: set[int] = set()
    cocancel_choices = list(range(n_sta))

    def fill_unit(unit: UnitSpec, apt: int) -> None:
        """The unit's timing and actions, from its place ``apt`` (the NA for NA units)."""
        u = unit.index
        if rng.random() < 0.3:
            unit.delay = rng.choice((0.0005, 0.002, 0.01))
        if cancellation and rng.random() < 0.15:
            unit.deadline = rng.choice((0.0, 0.001, 0.005, 0.02))
        for _ in range(rng.randint(1, 4)):
            r = rng.random()
            if r < 0.08:
                unit.actions.append(("sleep", rng.choice(SLEEPS)))
                continue
            if r < 0.2:
                # R33: activation of a class of each threading model, from the unit's place
                spec = CallSpec(next(counter), "activate", apt, -1, [], unit=u,
                                model=rng.choice(MODEL_NAMES))
                calls[spec.op] = spec
                unit.actions.append(("call", spec))
                continue
            if r < 0.3 and cancellation and cocancel_choices:
                op = next(counter)
                cocancels[op] = rng.choice(cocancel_choices)
                grace = rng.choice((0, 0, 0.005, 0.05, -1))
                if grace == -1 and apt != n_sta:
                    # no limit only from the MTA: an STA waiting with no limit for a call that
                    # its own thread serves nested below the wait deadlocks, as R2 says it
                    # would in COM (fuzz seed 693, threaded)
                    grace = 0.05
                unit.actions.append(("cocancel", op, cocancels[op], grace,
                                     rng.choice((0.0, 0.001, 0.005))))
                continue
            target = rng.choice([a for a in range(n_all) if a != apt])
            kind = "sync" if r < 0.64 else "async"
            spec = CallSpec(next(counter), kind, apt, target, [], unit=u)
            calls[spec.op] = spec
            spec.plan = plan_for(target, 0, apt, u, spec.op)
            if kind == "sync":
                if cancellation and rng.random() < 0.3:
                    spec.scope = rng.choice((0.0005, 0.002, 0.008, 0.03))
            else:
                spec.outer = rng.random() < 0.5
                spec.second_begin = rng.choice((None, None, "after_begin", "after_cancel"))
                if cancellation and rng.random() < 0.45:
                    spec.cancel = rng.choice((0, 0, 0.002, 0.02, -1))
                    spec.cancel_delay = rng.choice((0.0, 0.0, 0.001, 0.004))
                if rng.random() < 0.15:
                    spec.release = True
                elif cancellation and rng.random() < 0.25:
                    spec.scope = rng.choice((0.0005, 0.002, 0.008, 0.03))
            unit.actions.append(("call", spec))

    units: list[UnitSpec] = []
    for u in range(rng.randint(2, 6)):
        apt = rng.randrange(n_apt)
        unit = UnitSpec(u, apt, apt == n_sta and cancellation and rng.random() < 0.5, [])
        if rng.random() < 0.2:
            unit.host, unit.apt = apt, na  # R5: the unit enters the NA by rt.nta.run
            apt = na
        fill_unit(unit, apt)
        units.append(unit)
    prog = Program(seed, n_sta, policies, filters, enabled, units, shutdown, calls, cocancels,
                   disconnects, dying)
    # R33 from outside: no apartment (CO_E_NOTINITIALIZED), and the NA entered from none
    for _ in range(rng.choice((0, 1, 2))):
        where = rng.choice((NOAPT, na))
        spec = CallSpec(next(counter), "activate", where, -1, [], model=rng.choice(MODEL_NAMES))
        calls[spec.op] = spec
        prog.outside.append(spec)
    # R7, R34: identity and lifetimes, between apartments that never shut down and whose
    # thread no CoCancelCall can interrupt (R31: it would cancel a step's call)
    steady = [a for a in range(n_all)
              if a not in dying and not (a in enabled and a in cocancels.values())]
    for _ in range(rng.choice((0, 1, 1, 2))):
        if len(steady) >= 2:
            prog.lives.append(generate_life(rng, next(counter), steady, na,
                                            [a for a in steady if a != na]))
    # drawn after the rest (a seed's earlier parts stay as they were): what the lifetimes use
    # must stay up (no shutdown) and out of CoCancelCall's reach where cancellation is enabled
    for life in prog.lives:
        keep.update(a for a in (life.owner, life.user, *life.hosts)
                    if a is not None and 0 <= a < n_sta)
    cocancel_choices[:] = [s for s in range(n_sta) if not (s in keep and s in enabled)]
    # R5: units in the NA entered from no apartment (``await rt.nta.run(...)`` on the host's
    # loop): sync and Begin_/Finish_ calls, cancels, Release in flight, from no apartment
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        unit = UnitSpec(len(units), na, False, [], host=NOAPT)
        fill_unit(unit, na)
        units.append(unit)
    # R25, R7, R34, R18, R5: calls on objects of their own, their references counted to the end
    for _ in range(rng.choice((0, 1, 1, 2))):
        prog.fresh.append(generate_fresh(rng, next(counter), n_sta))
    if rng.random() < 0.25:
        prog.fresh.append(generate_race(rng, next(counter), n_sta))
    # R16's other answers, drawn last (a seed's earlier parts stay as they were): a caller's
    # RetryRejectedCall giving up as a DWORD or retrying late, MessagePending keeping a unit
    # queued (WAITNOPROCESS) or cancelling the outgoing call (CANCELCALL; not on the STAs of
    # the identity steps, whose calls must not fail)
    for s in sorted(filters):
        if rng.random() < 0.3:
            filters[s] = (filters[s][0], rng.choice(RETRY_MORE))
    #: STAs where CoCreateInstance from another thread makes an object: a unit there (R33)
    activated = activated_stas(prog)
    for s in range(n_sta):
        if rng.random() < 0.35:
            answers = rng.choice(PENDING_MORE)
            if s in keep:
                answers = tuple(a for a in answers if a != comsim.PENDINGMSG_CANCELCALL)
            if s in activated:
                # no WAITNOPROCESS where CoCreateInstance sends its unit (R33): this STA would
                # keep the creation queued until its outgoing call ends (R16), and when the
                # creator is a unit nested above that call's server on another STA, the server
                # cannot reply before the creator ends (R2: last in, first out). A deadlock,
                # as in COM (tests/testing/test_deadlock.py; threaded seed 606085 hung so)
                answers = tuple(a for a in answers if a != comsim.PENDINGMSG_WAITNOPROCESS)
                if not answers:
                    continue  # MessagePending always WAITDEFPROCESS, as with no answers drawn
            prog.pending[s] = answers or (comsim.PENDINGMSG_WAITNOPROCESS,)
    # scenarios of their own (filters.py, callobjs.py, values.py)
    for _ in range(rng.choice((0, 1, 1, 2))):
        r = rng.random()
        op = next(counter)
        prog.extras.append(generate_retry(rng, op) if r < 0.4 else generate_callobj(rng, op)
                           if r < 0.7 else generate_value(rng, op))
    if rng.random() < 0.08:
        prog.extras.append(generate_flood(rng, next(counter)))
    _analyse(prog)
    return prog


def activated_stas(prog: Program) -> set[int]:
    """The program's STAs that CoCreateInstance, from code on another thread, sends a unit to
    (R33): the main STA (s0), for a class of no threading model made anywhere but in s0. (An
    "Apartment" class from the MTA or from the NA entered from none goes to the host STA, which
    has no message filter; otherwise a class goes to the creator's own thread.)"""
    return {0} if any(c.kind == "activate" and c.model is None and c.caller not in (0, NOAPT)
                      for c in prog.calls.values()) else set()


def activation_home(prog: Program, c: CallSpec) -> int:
    """R33: where CoCreateInstance from ``c``'s place puts a class of ``c.model``."""
    if c.model == "Free":
        return prog.mta
    if c.model == "Neutral":
        return prog.na
    if c.model is None:
        return 0  # the main STA: the first one created
    if c.model == "Both":
        return c.caller
    # "Apartment": the creator's STA; from the MTA the host STA; from the NA the STA whose
    # thread is in it, else the host STA
    under = c.caller_apt if c.caller == prog.na else c.caller
    return under if under is not None and 0 <= under < prog.n_sta else HOSTSTA


def _analyse(prog: Program) -> None:
    """Derive, for every call, what COM-RULES allows as its outcome.

    Code in the NA runs on the thread of whoever entered it (R5): a call's *thread* is its
    unit's (a unit in the NA: its host's), or, for a call a server method makes, the server's
    thread — the caller's own thread again when the server is in the NA. Cancellation counts
    (R31), CoCancelCall (R31) and shutdowns (R18) follow the thread's apartment."""
    mta, na = prog.mta, prog.na
    dying = prog.dying
    units = {u.index: u for u in prog.units}
    cocancel_targets = set(prog.cocancels.values())

    def thread(c: CallSpec) -> tuple[str, int | None]:
        """The thread that runs the code making ``c``."""
        if c.parent is None:
            if c.unit is None:
                return ("apt", c.host)  # outside: no apartment, or the NA entered from none
            return ("unit", c.unit)
        p = prog.calls[c.parent]
        return thread(p) if p.target == na else ("apt", p.target)

    def apt_of(t: tuple[str, int | None]) -> int | None:
        return prog.unit_apt(units[t[1]]) if t[0] == "unit" and t[1] is not None else t[1]

    def server_apt(p: CallSpec) -> int | None:
        """The apartment whose thread runs ``p``'s server method."""
        return apt_of(thread(p)) if p.target == na else p.target

    def cancellable(c: CallSpec) -> bool:  # R31: by the caller thread's count
        t = thread(c)
        a = apt_of(t)
        if a is None:
            return False
        if a == mta:
            return t[0] == "unit" and t[1] is not None and units[t[1]].enable
        return a in prog.enabled

    def cocancel_hit(c: CallSpec) -> bool:  # R31: CoCancelCall may find it on its thread
        a = c.caller_apt
        return (c.kind in ("sync", "activate") and a is not None and 0 <= a < prog.n_sta
                and a in prog.enabled and a in cocancel_targets)

    def pend_hit(c: CallSpec) -> bool:
        """R16: MessagePending's CANCELCALL may fail it (an outgoing synchronous call of an
        STA's thread, when a run unit arrives there)."""
        a = c.caller_apt
        return (c.kind in ("sync", "activate") and a is not None and 0 <= a < prog.n_sta
                and comsim.PENDINGMSG_CANCELCALL in prog.pending.get(a, ()))

    def rejecting(c: CallSpec) -> bool:  # R16
        if c.kind not in ("sync", "activate") or not 0 <= c.target < prog.n_sta:
            return False
        flt = prog.filters.get(c.target)
        if flt is None or flt[0] == 0:
            return False
        # the NA has no filter of its own (R5): a caller there may give up at once
        mine = prog.filters.get(c.caller) if 0 <= c.caller < prog.n_sta else None
        return mine is None or any(gives_up(a) for a in mine[1])

    def abandonable(c: CallSpec) -> bool:
        """Its caller may stop waiting while its server runs on (R25, R28, R31, R32, R18)."""
        return (c.release or c.cancel is not None or c.scope is not None or cocancel_hit(c)
                or pend_hit(c) or c.may_cancelled or c.caller_apt in dying)

    def visit(c: CallSpec, parent: CallSpec | None) -> None:
        c.caller_apt = apt_of(thread(c))
        c.orphan = parent is not None and (parent.orphan or abandonable(parent))
        if c.kind == "activate":
            visit_activation(c)
            return
        if parent is None:
            if c.kind == "sync":
                c.told = ((c.scope is not None and cancellable(c)) or cocancel_hit(c)
                          or pend_hit(c))
            else:
                c.told = c.cancel is not None or c.scope is not None
            deadline = c.unit is not None and units[c.unit].deadline is not None
            c.may_cancelled = c.scope is not None or c.caller_apt in dying or deadline
            c.told = c.told or (deadline and (c.kind == "async" or cancellable(c)))
        else:
            interrupted = parent.told and prog.policies[parent.target] == "interrupt"
            c.told = (interrupted and cancellable(c)) or cocancel_hit(c) or pend_hit(c)
            c.may_cancelled = interrupted or server_apt(parent) in dying or c.orphan
        allowed: set[int] = set()
        for step in c.plan:
            if step[0] == "call":
                visit(step[1], c)
                if step[2]:
                    allowed |= step[1].allowed
                    c.propagated_canceled |= hr.RPC_E_CALL_CANCELED in step[1].allowed
            elif step[0] == "raise_com":
                allowed.add(step[1])
            elif step[0] == "raise_exc":
                allowed.add(hr.RPC_E_SERVERFAULT)  # R14
        if cocancel_hit(c) or c.cancel is not None or pend_hit(c):
            # R28, R31: the cancelled call fails with RPC_E_CALL_CANCELED. (A caller whose task
            # is cancelled gets CancelledError instead, R32; the server's late answer to a
            # cancel, a cooperative server's RPC_E_CALL_CANCELED included, is dropped.)
            allowed.add(hr.RPC_E_CALL_CANCELED)
        if rejecting(c):
            allowed.add(hr.RPC_E_CALL_REJECTED)  # R16: the caller gave up
        if dying or c.target in prog.disconnects or c.orphan:
            allowed |= GONE  # R17, R18
        c.allowed = allowed

    def visit_activation(c: CallSpec) -> None:
        if c.caller == NOAPT:
            c.allowed = {hr.CO_E_NOTINITIALIZED}  # R33, R4
            return
        c.target = activation_home(prog, c)
        deadline = c.unit is not None and units[c.unit].deadline is not None
        c.may_cancelled = deadline or c.caller_apt in dying
        allowed: set[int] = set()
        if c.target != c.caller:  # then Home() is a synchronous call (R13)
            if cocancel_hit(c) or pend_hit(c):
                allowed.add(hr.RPC_E_CALL_CANCELED)
            if rejecting(c):
                allowed.add(hr.RPC_E_CALL_REJECTED)
        if dying:
            allowed |= GONE  # R18: the creator's or the target's STA shut down
        c.allowed = allowed

    for u in prog.units:
        for a in u.actions:
            if a[0] == "call":
                visit(a[1], None)
    for c in prog.outside:
        visit(c, None)


def describe(prog: Program) -> str:
    """The program, readable."""
    lines = [f"program seed={prog.seed}: {prog.n_sta} STAs + MTA + NA",
             "  policies: " + ", ".join(f"{prog.name(i)}={p}"
                                        for i, p in enumerate(prog.policies))]
    for s, (p, retry) in prog.filters.items():
        lines.append(f"  filter on s{s}: rejects p={p}, RetryRejectedCall answers {retry}")
    for s, answers in sorted(prog.pending.items()):
        lines.append(f"  MessagePending on s{s} answers in turn "
                     + ", ".join(PENDING_NAMES[a] for a in answers))
    if prog.enabled:
        lines.append("  CoEnableCallCancellation on " + ", ".join(f"s{s}" for s in
                                                                  sorted(prog.enabled)))
    if prog.shutdown:
        lines.append(f"  shutdown s{prog.shutdown[0]} after {prog.shutdown[1]} s")
    if prog.dying:
        lines.append("  may shut down: " + ", ".join(f"s{s}" for s in sorted(prog.dying)))

    def call_text(c: CallSpec, indent: str) -> list[str]:
        opts = []
        for k in ("scope", "cancel", "cancel_delay", "release", "second_begin", "outer"):
            if c.kind == "activate":
                break
            v = getattr(c, k)
            if v not in (None, False, 0.0) or (k == "cancel" and v == 0):
                opts.append(f"{k}={v}")
        if c.kind == "activate":
            opts.append(f"model={c.model}")
        target = "HostSTA" if c.target == HOSTSTA else prog.name(c.target)
        head = (f"{indent}op {c.op}: {c.kind} {prog.name(c.caller)} -> {target}"
                f" {' '.join(opts)}  [allowed {sorted(hr.name(h) for h in c.allowed)}"
                f"{', cancelled' if c.may_cancelled else ''}]")
        out = [head]
        for step in c.plan:
            if step[0] == "call":
                out.append(f"{indent}  call (propagate={step[2]}):")
                out.extend(call_text(step[1], indent + "    "))
            else:
                out.append(f"{indent}  {step}")
        return out

    for u in prog.units:
        extra = " (CoEnableCallCancellation)" if u.enable else ""
        if u.host is not None:
            extra += f" entered from {prog.name(u.host)}"
        if u.delay:
            extra += f" sent after {u.delay} s"
        if u.deadline is not None:
            extra += f" run() cancelled after {u.deadline} s"
        lines.append(f"  unit {u.index} in {prog.name(u.apt)}{extra}:")
        for a in u.actions:
            if a[0] == "call":
                lines.extend(call_text(a[1], "    "))
            else:
                lines.append(f"    {a}")
    for c in prog.outside:
        lines.append("  outside any unit:")
        lines.extend(call_text(c, "    "))
    for life in prog.lives:
        lines.extend(describe_life(life, prog.name))
    for f in prog.fresh:
        lines.extend(describe_fresh(f, prog.name))
    for x in prog.extras:
        lines.extend(x.describe())
    return "\n".join(lines)


# =========================================================================== the interpreter
class INode(comsim.Interface):
    async def Op(self, plan: list[Any], tag: int) -> int: ...


AsyncINode = comsim.async_interface(INode)


class Node(comsim.CoClass, INode):
    cancel_policy = "interrupt"

    def __init__(self, ctx: Context, index: int) -> None:
        super().__init__()
        self.ctx = ctx
        self.index = index
        self.peers: dict[int, Any] = {}

    async def Op(self, plan: list[Any], tag: int) -> int:
        return await self.ctx.serve(self, plan, tag)


class CoopNode(Node):
    cancel_policy = "cooperative"


class IWhere(comsim.Interface):
    async def Home(self) -> str: ...


class Where(comsim.CoClass, IWhere):
    """Activated by CoCreateInstance (R33): says where it was made and where it runs."""

    def __init__(self) -> None:
        super().__init__()
        apt = comsim.current_apartment()
        self.born = apt.name if apt is not None else None

    async def Home(self) -> str:
        apt = comsim.current_apartment()
        return f"{self.born}/{apt.name if apt is not None else None}"


class WhereApartment(Where):
    threading_model = "Apartment"


class WhereFree(Where):
    threading_model = "Free"


class WhereBoth(Where):
    threading_model = "Both"


class WhereNeutral(Where):
    threading_model = "Neutral"


class WhereLegacy(Where):
    threading_model = None


WHERE_CLASSES: dict[str | None, type[Where]] = {
    "Apartment": WhereApartment, "Free": WhereFree, "Both": WhereBoth,
    "Neutral": WhereNeutral, None: WhereLegacy}


class Filter(comsim.IMessageFilter):
    """Rejects incoming synchronous calls with a probability; retries as scripted."""

    def __init__(self, seed: int, reject: float, retry: tuple[int, ...],
                 pending: tuple[int, ...] = (comsim.PENDINGMSG_WAITDEFPROCESS,),
                 report: Any = None) -> None:
        self.rng = random.Random(seed)
        self.reject = reject
        self.retry = retry
        self.pending = pending
        self.pending_rng = random.Random(seed * 7 + 3)  # its own: the other draws stay
        self.report = report

    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           interface_info: Any) -> int:
        if self.reject and self.rng.random() < self.reject:
            return self.rng.choice((comsim.SERVERCALL_REJECTED, comsim.SERVERCALL_RETRYLATER))
        return comsim.SERVERCALL_ISHANDLED

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        return self.rng.choice(self.retry)

    def MessagePending(self, callee_thread: int, tick_count: int, pending_type: int) -> int:
        if pending_type not in (comsim.PENDINGTYPE_TOPLEVEL, comsim.PENDINGTYPE_NESTED):
            self.report(f"MessagePending's pending_type {pending_type} (R16)")
        if len(self.pending) == 1:
            return self.pending[0]
        return self.pending_rng.choice(self.pending)


def _op_violation(ctx: Context, op: int, text: str) -> None:
    ctx.violation(f"op {op}: {text}")


class Context:
    """The log of one program run (shared by reference by every apartment)."""

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.outcomes: dict[int, list[tuple[Any, ...]]] = {}
        self.started: set[int] = set()
        self.units: dict[int, tuple[Any, ...]] = {}
        self.violations: list[str] = []
        self.cancel_hr: dict[int, int] = {}
        self.outers: dict[int, Outer] = {}
        self.begun: set[int] = set()
        self.scoped_out: set[int] = set()  # Finish_ ended by its cancel scope
        self.finished: set[int] = set()  # Finish_ returned or raised a COMError
        self.cancel_interrupted: set[int] = set()  # the task awaiting Cancel was cancelled
        self.thread_ids: dict[int, int] = {}
        self.proxies: dict[int, dict[int, Any]] = {}
        self.cocancel_ok: list[int] = []  # target STAs of CoCancelCall that gave S_OK
        self.life_logs: dict[int, list[Any]] = {}  # identity/lifetime op -> what each step gave
        #: (op, "object"|"gift", object, its apartment): each must end with its creator's one
        #: reference (fresh.settle)
        self.fresh_homes: list[tuple[int, str, Any, int]] = []
        self.fresh_outers: dict[int, Any] = {}  # fresh op -> its outer (R24)

    def violation(self, text: str) -> None:
        self.violations.append(text)

    def record(self, op: int, outcome: tuple[Any, ...]) -> None:
        self.outcomes.setdefault(op, []).append(outcome)

    # ------------------------------------------------------------- the server side
    async def serve(self, node: Node, plan: list[Any], tag: int) -> int:
        for step in plan:
            kind = step[0]
            if kind == "sleep":
                await anyio.sleep(step[1])
            elif kind == "shield":
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(step[1])
            elif kind == "poll":
                for _ in range(step[1]):
                    status = comsim.CoTestCancel()  # R30
                    if status == hr.RPC_E_CALL_CANCELED:
                        raise comsim.COMError(hr.RPC_E_CALL_CANCELED, "told to cancel")
                    if status != hr.RPC_S_CALLPENDING:
                        self.violation(f"op {tag}: CoTestCancel in a server method gave "
                                       f"{hr.name(status)} (R30)")
                    await anyio.sleep(step[2])
            elif kind == "disconnect":
                comsim.CoDisconnectObject(node)  # R17
            elif kind == "shutdown_self":
                apt = comsim.current_apartment()
                assert apt is not None
                await apt.shutdown()  # R18: from inside; the teardown cancels this task
                await anyio.sleep(0)
            elif kind == "raise_com":
                raise comsim.COMError(step[1], "the plan says so")
            elif kind == "raise_exc":
                raise ValueError("the plan says so")
            elif kind == "call":
                _, op, target, subplan, propagate = step
                err = await self.sync_call(node.peers[target], op, subplan)
                if propagate and err is not None:
                    raise comsim.COMError(err, f"nested op {op} failed")
        return expected(tag)

    # ------------------------------------------------------------- the client side
    async def sync_call(self, proxy: Any, op: int, plan: list[Any]) -> int | None:
        """A synchronous call, logged; gives the failure HRESULT or None."""
        self.started.add(op)
        try:
            value = await proxy.Op(plan, op)
        except comsim.COMError as exc:
            self.record(op, ("hr", exc.hresult))
            return exc.hresult
        except asyncio.CancelledError:
            self.record(op, ("cancelled",))
            raise
        except Exception as exc:
            self.record(op, ("exc", repr(exc)))
            return None
        self.record(op, ("value", value))
        return None

    async def async_call(self, spec: CallSpec, proxy: Any, apt_name: str) -> None:
        op = spec.op
        self.started.add(op)
        try:
            await self._async_call(spec, proxy, apt_name)
        except asyncio.CancelledError:
            if op not in self.outcomes:
                self.record(op, ("cancelled",))
            raise
        except comsim.COMError as exc:  # from Cancel: e.g. the caller's apartment shut down
            self.record(op, ("hr", exc.hresult))
        except Exception as exc:
            self.record(op, ("exc", repr(exc)))

    async def _async_call(self, spec: CallSpec, proxy: Any, apt_name: str) -> None:
        op = spec.op
        call = None
        try:
            factory = proxy.QueryInterface(comsim.ICallFactory)
            if spec.outer:
                outer = self.outers[op] = Outer(
                    functools.partial(_op_violation, self, op), apt_name, "caller")
                call = factory.CreateCall(AsyncINode, outer)
            else:
                call = factory.CreateCall(AsyncINode)
            factory.Release()
            call.Begin_Op(spec.wire(), op)  # R20
        except comsim.COMError as exc:
            self.record(op, ("begin_hr", exc.hresult))
            if call is not None:
                call.Release()
            return
        self.begun.add(op)
        if spec.second_begin == "after_begin":
            self.second_begin(call, spec)
        if spec.cancel is not None:
            if spec.cancel_delay:
                await anyio.sleep(spec.cancel_delay)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)  # R27
            try:
                status = await cancel.Cancel(spec.cancel)
            except asyncio.CancelledError:
                self.cancel_interrupted.add(op)  # R32: the call ends cancelled at once
                raise
            finally:
                cancel.Release()
            self.cancel_hr[op] = status
            if status not in (hr.S_OK, hr.RPC_E_CALL_COMPLETE):
                self.violation(f"op {op}: the only Cancel({spec.cancel}) gave "
                               f"{hr.name(status)} (R28)")
        if spec.second_begin == "after_cancel":
            self.second_begin(call, spec)
        if spec.release:
            left = call.Release()  # R25
            self.record(op, ("released",))
            if left != 0:
                self.violation(f"op {op}: Release of the only reference gave {left} (R25)")
            return
        if spec.scope is None:
            await self.finish(call, op)
        else:
            with anyio.move_on_after(spec.scope) as scope:
                await self.finish(call, op)
            if scope.cancelled_caught and self.outcomes.get(op) == [("cancelled",)]:
                self.scoped_out.add(op)
                # R32: Finish_'s clean-up was done: no call in progress any more (R22)
                try:
                    await call.Finish_Op()
                except comsim.COMError as exc:
                    if exc.hresult != hr.RPC_E_CALL_COMPLETE and not self.dead(spec, exc):
                        self.violation(f"op {op}: Finish_ after a cancelled Finish_ gave "
                                       f"{hr.name(exc.hresult)}, not RPC_E_CALL_COMPLETE "
                                       "(R22, R32)")
                else:
                    self.violation(f"op {op}: Finish_ after a cancelled Finish_ returned "
                                   "(R22, R32)")
        call.Release()

    async def finish(self, call: Any, op: int) -> None:
        try:
            value = await call.Finish_Op()  # R22
        except comsim.COMError as exc:
            self.finished.add(op)
            self.record(op, ("hr", exc.hresult))
            return
        except asyncio.CancelledError:
            self.record(op, ("cancelled",))
            raise
        self.finished.add(op)
        self.record(op, ("value", value))

    def dead(self, spec: CallSpec, exc: comsim.COMError) -> bool:
        """R12 comes first: a call object on a proxy whose apartment (the caller's) has shut
        down gives CO_E_OBJNOTCONNECTED to every use."""
        return exc.hresult == hr.CO_E_OBJNOTCONNECTED and spec.caller_apt in self.prog.dying

    def second_begin(self, call: Any, spec: CallSpec) -> None:
        op = spec.op
        try:
            call.Begin_Op([], op)
        except comsim.COMError as exc:
            if exc.hresult != hr.RPC_E_CALL_PENDING and not self.dead(spec, exc):
                self.violation(f"op {op}: a second Begin_ gave {hr.name(exc.hresult)}, not "
                               "RPC_E_CALL_PENDING (R21)")
        else:
            self.violation(f"op {op}: a second Begin_ before Finish_ was accepted (R21)")

    async def cocancel(self, op: int, sta: int, seconds: float, delay: float) -> None:
        if delay:
            await anyio.sleep(delay)
        self.started.add(op)
        try:
            status = await comsim.CoCancelCall(self.thread_ids[sta], seconds)  # R31
        except comsim.COMError as exc:
            self.record(op, ("hr", exc.hresult))
            return
        except asyncio.CancelledError:
            self.record(op, ("cancelled",))
            raise
        except Exception as exc:
            self.record(op, ("exc", repr(exc)))
            return
        self.record(op, ("status", status))
        if status == hr.S_OK:
            self.cocancel_ok.append(sta)

    async def activate(self, spec: CallSpec) -> None:
        """R33: CoCreateInstance from here; where the object went, proxy or object (R34),
        a call, a second route and IUnknown identity, the counts down to 0, then a call on
        the dead proxy (R34: CO_E_OBJNOTCONNECTED)."""
        op = spec.op
        prog = self.prog
        self.started.add(op)
        home = "HostSTA" if spec.target == HOSTSTA else prog.name(spec.target)
        creator = prog.name(spec.caller)
        where = f"op {op} (CoCreateInstance of a {spec.model!r} class in {creator})"
        try:
            obj = await comsim.CoCreateInstance(WHERE_CLASSES[spec.model], IWhere)
            if spec.caller == NOAPT:
                self.violation(f"{where}: succeeded in no apartment (R33: "
                               "CO_E_NOTINITIALIZED)")
                self.record(op, ("value", None))
                return
            at_home = home == creator
            if isinstance(obj, comsim.Proxy) == at_home:
                self.violation(f"{where}: gave {type(obj).__name__}; the object lives in "
                               f"{home} (R33: itself at home, else a proxy)")
                at_home = not at_home
            if at_home:
                if obj.QueryInterface(comsim.IUnknown) is not obj:
                    self.violation(f"{where}: at home QueryInterface(IUnknown) is not the "
                                   "object (R34)")
                obj.Release()
                got = await obj.Home()
            else:
                got = await obj.Home()
                again = comsim.unmarshal_interface(comsim.marshal_interface(obj, IWhere))
                unk1 = obj.QueryInterface(comsim.IUnknown)
                unk2 = again.QueryInterface(comsim.IUnknown)
                if again is not obj or unk1 is not unk2:
                    self.violation(f"{where}: a second route gave another proxy, or "
                                   "IUnknown differs (R34)")
                counts = [unk1.Release(), unk2.Release(), again.Release(), obj.Release()]
                if counts != [3, 2, 1, 0]:
                    self.violation(f"{where}: Release gave {counts}, not [3, 2, 1, 0] (R33: "
                                   "the only reference; R34: one count)")
                try:
                    await obj.Home()
                except comsim.COMError as exc:
                    if exc.hresult != hr.CO_E_OBJNOTCONNECTED:
                        self.violation(f"{where}: a call after the last Release gave "
                                       f"{hr.name(exc.hresult)} (R34: CO_E_OBJNOTCONNECTED)")
                else:
                    self.violation(f"{where}: a call after the last Release succeeded (R34)")
            if got != f"{home}/{home}":
                self.violation(f"{where}: made/runs in {got}, R33 says {home} (R1)")
        except comsim.COMError as exc:
            self.record(op, ("hr", exc.hresult))
            return
        except asyncio.CancelledError:
            self.record(op, ("cancelled",))
            raise
        except Exception as exc:
            self.record(op, ("exc", repr(exc)))
            return
        self.record(op, ("value", expected(op)))

    async def client(self, unit: UnitSpec, apt_name: str) -> None:
        """A client unit: its actions in order; every op's outcome is logged, none stops it."""
        if unit.enable:
            comsim.CoEnableCallCancellation()
        proxies = self.proxies[unit.apt]
        for action in unit.actions:
            if action[0] == "sleep":
                await anyio.sleep(action[1])
            elif action[0] == "cocancel":
                await self.cocancel(*action[1:])
            else:
                spec: CallSpec = action[1]
                if spec.kind == "activate":
                    await self.activate(spec)
                elif spec.kind == "async":
                    await self.async_call(spec, proxies[spec.target], apt_name)
                elif spec.scope is None:
                    await self.sync_call(proxies[spec.target], spec.op, spec.wire())
                else:
                    with anyio.move_on_after(spec.scope):  # R32
                        await self.sync_call(proxies[spec.target], spec.op, spec.wire())


# =========================================================================== running
@dataclass
class Report:
    seed: int
    runtime: str
    violations: list[str] = field(default_factory=list)
    hang: str | None = None
    replay: str | None = None  # a same-seed replay difference (deterministic)
    ops: int = 0
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations and self.hang is None and self.replay is None

    def __str__(self) -> str:
        head = f"seed {self.seed} [{self.runtime}]"
        if self.ok:
            return f"{head}: ok ({self.ops} ops)"
        parts = [f"{head}:"]
        if self.hang:
            parts.append(f"  HANG: {self.hang}")
        if self.replay:
            parts.append(f"  REPLAY: {self.replay}")
        parts.extend(f"  {v}" for v in self.violations)
        return "\n".join(parts)


_ABANDONED: list[Any] = []  # loops of hung programs: kept, never closed


async def _program(rt: comsim.Runtime, prog: Program, ctx: Context, det: bool) -> None:
    apts = [await rt.create_sta(prog.name(i)) for i in range(prog.n_sta)] + [rt.mta]

    async def setup(i: int) -> tuple[int, Any, Node]:
        if i in prog.filters or i in prog.pending:
            p, retry = prog.filters.get(i, (0.0, (-1,)))
            comsim.CoRegisterMessageFilter(Filter(
                prog.seed * 31 + i, p, retry,
                prog.pending.get(i, (comsim.PENDINGMSG_WAITDEFPROCESS,)), ctx.violation))
        if i in prog.enabled:
            comsim.CoEnableCallCancellation()
        cls = CoopNode if prog.policies[i] == "cooperative" else Node
        node = cls(ctx, i)
        return (comsim.current_thread_id(),
                comsim.marshal_interface(node, INode, flags=comsim.MSHLFLAGS.TABLESTRONG), node)

    streams: dict[int, Any] = {}
    nodes: dict[int, Node] = {}
    for i, apt in enumerate(apts):
        tid, streams[i], nodes[i] = await apt.run(setup, i)
        ctx.thread_ids[i] = tid
    na = prog.na
    _, streams[na], nodes[na] = await rt.nta.run(setup, na)  # R5: a server in the NA

    async def bind(i: int) -> None:
        ctx.proxies[i] = {j: comsim.unmarshal_interface(s) for j, s in streams.items() if j != i}
        nodes[i].peers = ctx.proxies[i]

    for i, apt in enumerate(apts):
        await apt.run(bind, i)
    await rt.nta.run(bind, na)  # proxies bound to the NA, usable from NA code anywhere

    async def enter(u: UnitSpec) -> None:
        if u.host is None:
            await apts[u.apt].run(ctx.client, u, apts[u.apt].name)
        elif u.host == NOAPT:  # R5: the NA entered from no apartment, on the host's loop
            await rt.nta.run(ctx.client, u, "NA")
        else:  # R5: the unit enters the NA on its host's thread
            await apts[u.host].run(rt.nta.run, ctx.client, u, "NA")

    async def unit(u: UnitSpec) -> None:
        if u.delay:
            await anyio.sleep(u.delay)  # sent later: it may queue behind running units
        try:
            if u.deadline is None:
                await enter(u)
            else:
                with anyio.move_on_after(u.deadline) as scope:  # R32: cancels the unit
                    await enter(u)
                if scope.cancelled_caught:
                    ctx.units[u.index] = ("cancelled",)
                    return
        except comsim.COMError as exc:
            ctx.units[u.index] = ("hr", exc.hresult)
        except Exception as exc:
            ctx.units[u.index] = ("exc", repr(exc))
        else:
            ctx.units[u.index] = ("ok",)

    async def shutdown_later(sta: int, delay: float) -> None:
        await anyio.sleep(delay)  # a fault at a chosen moment, not a wait for other tasks
        await apts[sta].shutdown()

    async def outside(c: CallSpec) -> None:
        if c.caller == NOAPT:
            await ctx.activate(c)  # R33: from no apartment
        else:
            await rt.nta.run(ctx.activate, c)  # R5: the NA entered from no apartment

    filters = {i for i, (p, _) in prog.filters.items() if p > 0}

    async def life(spec: LifeSpec) -> None:
        if spec.delay:
            await anyio.sleep(spec.delay)
        ctx.started.add(spec.op)
        run = LifeRun(rt, spec, apts, prog.na, prog.mta, prog.name, ctx.violation,
                      spec.owner in filters)
        ctx.life_logs[spec.op] = run.log
        try:
            await run.run()
        except Exception as exc:
            ctx.violation(f"identity op {spec.op} step {run.step_no} "
                          f"({spec.steps[run.step_no - 1] if run.step_no else 'export'}): "
                          f"raised {exc!r}")
        ctx.record(spec.op, ("life", len(run.log)))

    async with anyio.create_task_group() as tg:
        for c in prog.outside:
            tg.start_soon(outside, c)
        for spec in prog.lives:
            tg.start_soon(life, spec)
        for f in prog.fresh:
            tg.start_soon(FreshRun(rt, f, apts, na, ctx, det).run)
        for x in prog.extras:
            tg.start_soon(x.run, rt, ctx, det)
        if prog.shutdown is not None:
            if det:
                rt.schedule_shutdown(apts[prog.shutdown[0]], prog.shutdown[1])
            else:
                tg.start_soon(shutdown_later, *prog.shutdown)
        for u in prog.units:
            tg.start_soon(unit, u)
    await settle(rt, ctx, apts, na, det)  # R7, R25: nothing the program let go of is kept


def _LATENCY(rng: random.Random) -> float:
    return rng.uniform(0.0, 0.003)


async def _main(prog: Program, ctx: Context, det: bool, capture: bool) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cm = capture_trace() if capture else contextlib.nullcontext(events)
    with cm as captured:
        try:
            with anyio.fail_after(VIRTUAL_LIMIT if det else REAL_LIMIT):
                async with comsim.Runtime(deterministic=det, seed=prog.seed if det else None) as rt:
                    if det and prog.seed % 2:
                        # every message takes a seeded 0-3 ms (virtual): arrivals spread over
                        # time, against the sleeps, time-outs and grace periods, as on threads
                        rt.set_latency(_LATENCY)
                    await _program(rt, prog, ctx, det)
        except TimeoutError:
            ctx.violation(f"HANG: not done after {VIRTUAL_LIMIT if det else REAL_LIMIT} "
                          f"{'virtual' if det else 'real'} seconds")
        # R18: nothing of comsim is left once the runtime has exited
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if left:
            ctx.violation(f"tasks left after the runtime exited: {left!r}"[:600])
    return list(captured)


def _execute(prog: Program, runtime: str, capture: bool
             ) -> tuple[Context, list[dict[str, Any]], str | None, list[str]]:
    """Run ``prog`` once on a fresh loop, with a watchdog. Gives (log, trace, hang, threads
    left)."""
    det = runtime == "deterministic"
    ctx = Context(prog)
    before = set(threading.enumerate())
    loop: asyncio.AbstractEventLoop = VirtualTimeLoop() if det else asyncio.new_event_loop()
    done = threading.Event()
    fired = threading.Event()
    limit = WATCHDOG[runtime]

    def watchdog() -> None:
        if not done.wait(limit):
            fired.set()
            loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=watchdog, name="fuzz-watchdog", daemon=True).start()
    task = loop.create_task(_main(prog, ctx, det, capture))
    events: list[dict[str, Any]] = []
    hang = None
    try:
        events = loop.run_until_complete(task)
    except RuntimeError as exc:
        if not fired.is_set():
            raise
        hang = (f"no end after {limit} s of real time"
                + (f" (virtual time {loop.time():.3f})" if det else "") + f": {exc}")
    finally:
        done.set()
    if hang is not None:
        _ABANDONED.append((loop, task))  # its tasks may still spin: never closed
        return ctx, events, hang, []
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    threads = [t.name for t in threading.enumerate()
               if t not in before and t.name.startswith("comsim-")]
    # R18: nothing left on comsim's own loops either (the threaded runtime's apartments): a
    # task still pending when its loop went is reported by asyncio when it is collected
    gc.collect()
    for text in _ASYNCIO_LOG.take():
        ctx.violation(f"asyncio reported after the runtime exited (R18): {text}"[:600])
    return ctx, events, None, threads


class _AsyncioLog(logging.Handler):
    """Keeps what asyncio logs at ERROR (a task destroyed while pending, an exception never
    retrieved), to be reported by the program that left it behind."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:  # under the handler's own RLock
        self.seen.append(record.getMessage().split("\n")[0])

    def take(self) -> list[str]:
        self.acquire()
        try:
            out, self.seen = self.seen, []
        finally:
            self.release()
        return out


_ASYNCIO_LOG = _AsyncioLog()
logging.getLogger("asyncio").addHandler(_ASYNCIO_LOG)


def _norm(events: list[dict[str, Any]]) -> list[tuple[tuple[str, str], ...]]:
    return [tuple(sorted((k, repr(v)) for k, v in e.items())) for e in events]


def run_program(seed: int, runtime: str = "threaded", *, cancellation: bool = True,
                replay: bool = True) -> Report:
    """Generate the program of ``seed`` and run it on ``runtime`` ("threaded" or
    "deterministic"); on the deterministic runtime run it twice and compare (``replay``)."""
    if runtime not in WATCHDOG:
        raise ValueError(f"runtime must be 'threaded' or 'deterministic', not {runtime!r}")
    prog = generate(seed, cancellation=cancellation)
    report = Report(seed, runtime)
    t0 = time.perf_counter()
    det = runtime == "deterministic"
    ctx, events, hang, threads = _execute(prog, runtime, capture=det and replay)
    report.ops = len(ctx.started)
    timed_out = [v for v in ctx.violations if v.startswith("HANG")]
    if hang is None and timed_out:
        hang = timed_out[0][len("HANG: "):]
        ctx.violations.remove(timed_out[0])
        # what the hang left undone, in brief: units and ops without an outcome, tasks left
        left = [v for v in check(prog, ctx) if "no outcome" in v or "tasks left" in v]
        report.hang = "\n    ".join([hang, *left])
    elif hang is None:
        report.violations.extend(check(prog, ctx))
        if threads:
            report.violations.append(f"comsim threads alive after the runtime exited: "
                                     f"{threads} (R18)")
        if det and replay:
            ctx2, events2, hang2, _ = _execute(prog, runtime, capture=True)
            if hang2 is not None:
                report.replay = f"the replay hung: {hang2}"
            else:
                report.replay = _replay_diff(ctx, events, ctx2, events2)
    else:
        report.hang = "\n    ".join([hang, *ctx.violations])
    for outs in ctx.outcomes.values():
        for o in outs:
            key = o[0] if o[0] not in ("hr", "begin_hr", "status") else f"{o[0]}:{hr.name(o[1])}"
            report.outcomes[key] = report.outcomes.get(key, 0) + 1
    report.seconds = time.perf_counter() - t0
    return report


def _replay_diff(ctx: Context, events: list[dict[str, Any]], ctx2: Context,
                 events2: list[dict[str, Any]]) -> str | None:
    a, b = _norm(events), _norm(events2)
    if a != b:
        i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                 min(len(a), len(b)))
        first = events[i] if i < len(events) else None
        second = events2[i] if i < len(events2) else None
        return (f"traces differ at event {i} of {len(a)}/{len(b)}: {first} vs {second}")
    if ctx.life_logs != ctx2.life_logs:
        return f"same trace, different identity steps: {ctx.life_logs} vs {ctx2.life_logs}"
    if ctx.outcomes != ctx2.outcomes or ctx.units != ctx2.units:
        return f"same trace, different outcomes: {ctx.outcomes} vs {ctx2.outcomes}"
    return None


def check_many(seeds: Iterable[int], runtime: str = "threaded", *,
               cancellation: bool = True, replay: bool = True) -> list[Report]:
    """``run_program`` for each seed (``runtime="both"``: on each runtime in turn)."""
    runtimes = ("threaded", "deterministic") if runtime == "both" else (runtime,)
    # what lives already (a test process's heap: other tests' leftovers) is no program's: the
    # collection each program makes (``_execute``) need not walk it
    gc.collect()
    gc.freeze()
    try:
        return [run_program(s, r, cancellation=cancellation, replay=replay)
                for s in seeds for r in runtimes]
    finally:
        gc.unfreeze()


# =========================================================================== the checker
def check(prog: Program, ctx: Context) -> list[str]:
    """Every invariant of one run; gives the violations."""
    out = list(ctx.violations)
    dying = prog.dying
    aborted = set()
    for u in prog.units:
        res = ctx.units.get(u.index)
        if res is None:
            out.append(f"unit {u.index} in {prog.name(u.apt)}: no outcome")
        elif res == ("ok",):
            pass
        elif res == ("hr", hr.RPC_E_DISCONNECTED) and prog.unit_apt(u) in dying:
            aborted.add(u.index)  # R18: its apartment shut down
        elif res == ("cancelled",) and u.deadline is not None:
            aborted.add(u.index)  # R32: its caller cancelled it
        else:
            out.append(f"unit {u.index} in {prog.name(u.apt)} ended with {_fmt(res)}")
            aborted.add(u.index)
    for op, sta in prog.cocancels.items():
        outs = ctx.outcomes.get(op, [])
        unit = next(u for u in prog.units
                    if any(a[0] == "cocancel" and a[1] == op for a in u.actions))
        if _count(out, op, outs, op in ctx.started, unit.index in aborted, True):
            continue
        o = outs[0]
        allowed = ({hr.S_OK, hr.E_NOINTERFACE, hr.RPC_E_CALL_CANCELED, hr.RPC_E_CALL_COMPLETE}
                   if sta in prog.enabled else {hr.E_NOINTERFACE, hr.CO_E_CANCEL_DISABLED})
        if o[0] == "status" and o[1] in allowed:
            continue
        if o == ("cancelled",) and (prog.unit_apt(unit) in dying or unit.deadline is not None):
            continue
        out.append(f"op {op}: CoCancelCall(thread of s{sta}) gave {_fmt(o)} (R31; allowed "
                   f"{sorted(hr.name(h) for h in allowed)})")
    for op, c in prog.calls.items():
        outs = ctx.outcomes.get(op, [])
        if _count(out, op, outs, op in ctx.started, c.unit in aborted, c.parent is None):
            continue
        o = outs[0]
        where = f"op {op} ({c.kind} {prog.name(c.caller)}->{prog.name(c.target)})"
        if o[0] == "value":
            if o[1] != expected(op):
                out.append(f"{where}: value {o[1]!r}, the server returns {expected(op)} (R11)")
        elif o[0] == "hr":
            if o[1] not in c.allowed:
                out.append(f"{where}: {hr.name(o[1])}, allowed "
                           f"{sorted(hr.name(h) for h in c.allowed)} or the value")
        elif o[0] == "begin_hr":
            if o[1] not in c.allowed & GONE:
                out.append(f"{where}: CreateCall/Begin_ failed with {hr.name(o[1])}")
        elif o[0] == "cancelled":
            if not c.may_cancelled:
                out.append(f"{where}: its caller's task was cancelled, but nothing in the "
                           "program cancels it (R32)")
        elif o[0] == "released":
            if not c.release:
                out.append(f"{where}: released?")
        else:
            out.append(f"{where}: {_fmt(o)} (a plain exception reached the caller)")
        if c.kind == "async":
            out.extend(_check_async(prog, ctx, c, o, where))
    out.extend(check_fresh(prog, ctx))
    for x in prog.extras:  # every scenario of its own ran to its end, once
        outs = ctx.outcomes.get(x.op, [])
        if len(outs) != 1 and not any("HANG" in v for v in out):
            out.append(f"{type(x).__name__} op {x.op}: {len(outs)} outcomes {outs}")
    for life in prog.lives:  # every identity/lifetime scenario ran to its end
        if not ctx.outcomes.get(life.op) and not any("HANG" in v for v in out):
            out.append(f"identity op {life.op}: never finished")
    # R31: a CoCancelCall that gave S_OK cancelled a call of that thread
    for sta in ctx.cocancel_ok:
        if sta in dying:
            continue
        hit = [op for op, c in prog.calls.items()
               if c.kind in ("sync", "activate") and c.caller_apt == sta
               and ctx.outcomes.get(op, [None])[0] in (("hr", hr.RPC_E_CALL_CANCELED),
                                                       ("cancelled",))]
        if not hit:
            out.append(f"CoCancelCall(thread of s{sta}) gave S_OK, but no call of that thread "
                       "failed with RPC_E_CALL_CANCELED (R31)")
    return out


def _check_async(prog: Program, ctx: Context, c: CallSpec, o: tuple[Any, ...],
                 where: str) -> list[str]:
    out = []
    op = c.op
    status = ctx.cancel_hr.get(op)
    gone = o[0] == "hr" and o[1] in GONE and c.caller_apt in prog.dying  # R12: caller shut down
    if (status == hr.S_OK and o[0] in ("value", "hr") and o != ("hr", hr.RPC_E_CALL_CANCELED)
            and not gone):
        out.append(f"{where}: Cancel gave S_OK, then Finish_ gave {_fmt(o)}, not "
                   "RPC_E_CALL_CANCELED (R28)")
    if (status == hr.RPC_E_CALL_COMPLETE and o == ("hr", hr.RPC_E_CALL_CANCELED)
            and not c.propagated_canceled):
        out.append(f"{where}: Cancel gave RPC_E_CALL_COMPLETE, then Finish_ gave "
                   "RPC_E_CALL_CANCELED (R28)")
    outer = ctx.outers.get(op)
    if outer is not None:
        n = outer.count
        if op not in ctx.begun:
            if n:
                out.append(f"{where}: outer.Signal() x{n} for a call that never began (R24)")
        elif o[0] == "hr" and o[1] == hr.CO_E_OBJNOTCONNECTED and c.caller_apt in prog.dying:
            # R12 first: Finish_ through a proxy of the shut-down caller fails at once; the call
            # was abandoned with its apartment (R18) unless its reply came in before: it ended
            # (one Signal) or never will (none)
            if n > 1:
                out.append(f"{where}: outer.Signal() x{n} (R24: at most once)")
        elif op in ctx.finished or op in ctx.scoped_out:
            if n != 1:
                out.append(f"{where}: outer.Signal() x{n} for a call that ended (R24)")
        elif op in ctx.cancel_interrupted and c.caller not in prog.dying:
            if n != 1:
                out.append(f"{where}: the task awaiting Cancel was cancelled, which ends the "
                           f"call cancelled at once (R32), but outer.Signal() x{n} (R24)")
        elif n > 1:
            out.append(f"{where}: outer.Signal() x{n} (R24: at most once)")
    return out


def _count(out: list[str], op: int, outs: list[Any], started: bool, aborted: bool,
           top: bool) -> bool:
    """Exactly one outcome per started op; True when there is nothing more to check."""
    if len(outs) > 1:
        out.append(f"op {op}: {len(outs)} outcomes {outs}")
        return True
    if not outs:
        if started:
            out.append(f"op {op}: started, but no outcome")
        elif top and not aborted:
            out.append(f"op {op}: never ran, though its unit ended normally")
        return True
    return False


def _fmt(o: tuple[Any, ...] | None) -> str:
    if o is None:
        return "nothing"
    if o[0] in ("hr", "begin_hr", "status"):
        return f"{o[0]} {hr.name(o[1])}"
    return " ".join(str(x) for x in o)
