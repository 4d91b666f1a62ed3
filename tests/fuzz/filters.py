"""Message filters at their edges (R16, R2, R28, R31, R32), in scenarios of their own.

A ``RetrySpec`` is one synchronous call from an STA of its own (``c<op>``) to an object in
another STA of its own (``r<op>``) whose filter rejects incoming calls (always, or with a
probability; REJECTED or RETRYLATER). The caller's filter answers ``RetryRejectedCall`` from
``retry`` in turn (the last answer repeating): negative and DWORDs of ``0xFFFFFFFF`` or more
give up (``RPC_E_CALL_REJECTED``), 0-99 retries now, 100 and more after that many ms -- also
``FOREVER`` (11 days: only a cancel ends it). Its ``MessagePending`` answers ``pending``:
WAITDEFPROCESS (a unit arriving starts, nested), WAITNOPROCESS (it stays queued until the
outgoing call ends) or CANCELCALL (the innermost outgoing call fails with
``RPC_E_CALL_CANCELED`` and the unit stays queued until it has). The call is made by
``Apartment.run`` work (PENDINGTYPE_TOPLEVEL) or, ``nested``, by a method of an object in the
caller's STA called from the MTA (PENDINGTYPE_NESTED). Then, once the caller is in its retry
delay, something may end the call (``route``): ``"cocancel"`` -- ``CoCancelCall(its thread,
grace)`` from the MTA or from a unit sent to the caller's STA (R31); ``"task"`` -- the caller's
task is cancelled ``at`` after the call began (R32); ``"deadline"`` -- the caller of
``Apartment.run`` cancels the unit (R32); ``"unit"`` -- a unit is sent to the caller's STA
(MessagePending decides, R16; with WAITDEFPROCESS it calls ``CoCancelCall(0, grace)`` from
inside, nested); ``"none"``.

A ``FloodSpec`` queues hundreds of synchronous calls at an STA whose filter rejects them
while its thread is busy (R2, R16), from the MTA or from tasks of one unit in an STA with no
filter (its callers give up at once): each ends with its own outcome, the busy unit too.

Checked: one outcome per call, from what R16/R28/R31/R32 allow; a call that a cancel must end
(a ``FOREVER`` delay) ends so, in bounded time; CoCancelCall's status and the call's outcome
agree (R31); MessagePending's ``pending_type`` (R16) and what it says about the unit's start
(WAITNOPROCESS, CANCELCALL: only after the call ended; WAITDEFPROCESS: nested, while it
waits); with every call rejected, the caller gives up after exactly the answers up to the first
giving up and the server never ran (R16).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import anyio

import comsim
from comsim import hresult as hr

FOREVER = 10**9  # ms: a retry delay of 11 days, which only a cancel ends
#: retry answer sequences that end by giving up (the last one repeats)
FINITE = ((0, 150, -1), (100, 0xFFFFFFFF), (250, 2**32), (120, 10**400), (50, 99, -1),
          (-1,), (0, 0, 0xFFFFFFFF), (300, -(2**40)))
ENDLESS = ((FOREVER,), (0, FOREVER), (150, FOREVER))
ROUTES = ("none", "cocancel", "task", "deadline", "unit")
PENDINGS = (comsim.PENDINGMSG_WAITDEFPROCESS, comsim.PENDINGMSG_WAITNOPROCESS,
            comsim.PENDINGMSG_CANCELCALL)
PENDING_NAMES = {comsim.PENDINGMSG_CANCELCALL: "CANCELCALL",
                 comsim.PENDINGMSG_WAITNOPROCESS: "WAITNOPROCESS",
                 comsim.PENDINGMSG_WAITDEFPROCESS: "WAITDEFPROCESS"}
#: a call a cancel must end: bound of the wait, virtual (deterministic) / real seconds
BOUND = {"deterministic": 60.0, "threaded": 4.0}


def gives_up(answer: int) -> bool:
    """R16: RetryRejectedCall's answer gives up (COM's DWORD: 0xFFFFFFFF is -1)."""
    return answer < 0 or answer >= 0xFFFFFFFF


def value_of(tag: int) -> int:
    return tag * 7 + 3


@dataclass
class RetrySpec:
    op: int
    reject: float  # the server STA's filter rejects with this probability (1.0: always)
    retry: tuple[int, ...]  # the caller's RetryRejectedCall answers in turn, the last repeating
    pending: int  # the caller's MessagePending answer
    route: str  # one of ROUTES
    at: float  # the route acts this long after the caller is first in its retry delay
    enable: bool  # CoEnableCallCancellation on the caller's thread (R31)
    grace: float = 0.0  # CoCancelCall's seconds
    nested: bool = False  # the call is made by a method on the caller's STA (PENDINGTYPE_NESTED)
    from_unit: bool = False  # "cocancel": from a unit on the caller's STA, else the MTA

    @property
    def endless(self) -> bool:
        return not any(gives_up(a) for a in self.retry)

    def describe(self) -> list[str]:
        retry = tuple("FOREVER" if a == FOREVER else a for a in self.retry)
        opts = [f"reject={self.reject}", f"retry={retry}",
                f"pending={PENDING_NAMES[self.pending]}", f"route={self.route}"]
        if self.route != "none":
            opts.append(f"at={self.at}")
        if self.enable:
            opts.append("CoEnableCallCancellation")
        if self.route == "cocancel" or (self.route == "unit" and self.endless):
            opts.append(f"grace={self.grace}")
        if self.nested:
            opts.append("nested (by a method, from the MTA)")
        if self.from_unit:
            opts.append("CoCancelCall from a unit on the caller's STA")
        return [f"  filter op {self.op}: sync call c{self.op} -> r{self.op} " + " ".join(opts)]

    def allowed(self) -> set[int]:
        out = set()
        if not self.endless:
            out.add(hr.RPC_E_CALL_REJECTED)
        if (self.route == "cocancel" and self.enable) or (
                self.route == "unit" and (self.pending == comsim.PENDINGMSG_CANCELCALL
                                          or (self.endless and self.enable))):
            out.add(hr.RPC_E_CALL_CANCELED)
        if self.from_unit and self.pending == comsim.PENDINGMSG_CANCELCALL:
            out.add(hr.RPC_E_CALL_CANCELED)
        return out

    async def run(self, rt: comsim.Runtime, ctx: Any, det: bool) -> None:
        await RetryRun(rt, self, ctx, det).run()


@dataclass
class FloodSpec:
    op: int
    n: int  # calls queued at once
    reject: float  # the server STA's filter rejects with this probability
    busy: float  # the server STA's thread is busy (a non-COM await) this long
    from_sta: bool  # callers: tasks of one unit in an STA with no filter, else MTA tasks

    def describe(self) -> list[str]:
        return [f"  flood op {self.op}: {self.n} sync calls from "
                f"{'tasks of a unit in an STA' if self.from_sta else 'MTA tasks'} queued at "
                f"r{self.op} (busy {self.busy} s), its filter rejecting p={self.reject}"]

    async def run(self, rt: comsim.Runtime, ctx: Any, det: bool) -> None:
        await _flood(rt, self, ctx, det)


def generate_retry(rng: random.Random, op: int) -> RetrySpec:
    route = rng.choice(ROUTES)
    nested = rng.random() < 0.25 and route in ("none", "cocancel", "unit")
    spec = RetrySpec(op, rng.choice((1.0, 1.0, 0.5)), rng.choice(FINITE), rng.choice(PENDINGS),
                     route, rng.choice((0.0, 0.002, 0.01, 0.03)), rng.random() < 0.7,
                     nested=nested)
    if route == "cocancel":
        spec.grace = rng.choice((0, 0, 0.01, -1))
        spec.from_unit = rng.random() < 0.4
    if route == "unit":
        spec.grace = rng.choice((0, 0.01))
    # an endless delay only where the route ends it (a cancel that cannot reach it deadlocks,
    # as in COM): CoCancelCall with cancellation enabled, a cancelled task, MessagePending's
    # CANCELCALL, or CoCancelCall(0) from a nested unit
    can_end = (route in ("task", "deadline")
               or (route == "cocancel" and spec.enable
                   and not (spec.from_unit and spec.pending == comsim.PENDINGMSG_WAITNOPROCESS))
               or (route == "unit" and (spec.pending == comsim.PENDINGMSG_CANCELCALL or (
                   spec.pending == comsim.PENDINGMSG_WAITDEFPROCESS and spec.enable))))
    if can_end and rng.random() < 0.6:
        spec.retry = rng.choice(ENDLESS)
        spec.reject = 1.0  # else the call may pass before the route acts, then meet a reject
    return spec


def generate_flood(rng: random.Random, op: int) -> FloodSpec:
    return FloodSpec(op, rng.choice((150, 250, 400)), rng.choice((1.0, 1.0, 0.5)),
                     rng.choice((0.005, 0.02)), rng.random() < 0.4)


# =========================================================================== the objects
class ITarget(comsim.Interface):
    async def Ping(self, tag: int) -> int: ...


class Target(comsim.CoClass, ITarget):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def Ping(self, tag: int) -> int:
        self.calls += 1
        return value_of(tag)


class IRelay(comsim.Interface):
    async def Relay(self, tag: int) -> Any: ...


class Relay(comsim.CoClass, IRelay):
    """In the caller's STA: makes the call from inside an incoming call (nested, R16)."""

    def __init__(self, stream: Any, run: Any) -> None:
        super().__init__()
        self.stream = stream
        self.run = run

    async def Relay(self, tag: int) -> Any:
        return await self.run.call(self.stream, tag)


class Rejecter(comsim.IMessageFilter):
    """The server STA's filter: rejects with a probability (REJECTED or RETRYLATER)."""

    def __init__(self, seed: int, reject: float) -> None:
        self.rng = random.Random(seed)
        self.reject = reject
        self.asked = 0

    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           interface_info: Any) -> int:
        self.asked += 1
        if self.rng.random() < self.reject:
            return self.rng.choice((comsim.SERVERCALL_REJECTED, comsim.SERVERCALL_RETRYLATER))
        return comsim.SERVERCALL_ISHANDLED

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        return -1

    def MessagePending(self, callee_thread: int, tick_count: int, pending_type: int) -> int:
        return comsim.PENDINGMSG_WAITDEFPROCESS


class Retrier(comsim.IMessageFilter):
    """The caller STA's filter: answers ``retry`` in turn and ``pending``; signals ``asked``
    as RetryRejectedCall is asked."""

    def __init__(self, retry: tuple[int, ...], pending: int, asked: Any) -> None:
        self.retry = retry
        self.pending = pending
        self.asked = asked
        self.retries = 0
        self.pendings: list[int] = []

    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           interface_info: Any) -> int:
        return comsim.SERVERCALL_ISHANDLED

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        answer = self.retry[min(self.retries, len(self.retry) - 1)]
        self.retries += 1
        self.asked.Signal()
        return answer

    def MessagePending(self, callee_thread: int, tick_count: int, pending_type: int) -> int:
        self.pendings.append(pending_type)
        return self.pending


def _outcome(exc: BaseException | None, value: Any = None) -> tuple[Any, ...]:
    if exc is None:
        return ("value", value)
    if isinstance(exc, comsim.COMError):
        return ("hr", exc.hresult)
    if isinstance(exc, asyncio.CancelledError):
        return ("cancelled",)
    return ("exc", repr(exc))


# =========================================================================== retry
class RetryRun:
    def __init__(self, rt: comsim.Runtime, spec: RetrySpec, ctx: Any, det: bool) -> None:
        self.rt, self.spec, self.ctx, self.det = rt, spec, ctx, det
        self.log: list[tuple[Any, ...]] = []  # ("call", outcome) / ("unit",) in order
        self.status: int | None = None  # CoCancelCall's
        self.tid = 0
        self.deadline = anyio.CancelScope()

    def _bad(self, text: str) -> None:
        s = self.spec
        self.ctx.violation(f"filter op {s.op} (retry={s.retry}, pending="
                           f"{PENDING_NAMES[s.pending]}, route={s.route}): {text}")

    async def call(self, stream: Any, tag: int) -> tuple[Any, ...]:
        """The call itself, in the caller's STA; gives its outcome."""
        proxy = comsim.unmarshal_interface(stream)
        try:
            try:
                value = await proxy.Ping(tag)
            except BaseException as exc:
                out = _outcome(exc)
                self.log.append(("call", out))
                if isinstance(exc, comsim.COMError):
                    return out
                raise
            out = ("value", value)
            self.log.append(("call", out))
            return out
        finally:
            proxy.Release()

    async def run(self) -> None:
        spec, ctx, rt = self.spec, self.ctx, self.rt
        op = spec.op
        ctx.started.add(op)
        srv = await rt.create_sta(f"r{op}")
        cli = await rt.create_sta(f"c{op}")
        asked = comsim.ManualResetEvent()
        flt = Retrier(spec.retry, spec.pending, asked)
        rej = Rejecter(op * 13 + 1, spec.reject)

        async def serve() -> tuple[Any, Any]:
            comsim.CoRegisterMessageFilter(rej)
            obj = Target()
            return obj, comsim.marshal_interface(obj, ITarget,
                                                 flags=comsim.MSHLFLAGS.TABLESTRONG)

        target, stream = await srv.run(serve)

        async def client_setup() -> tuple[int, Any]:
            comsim.CoRegisterMessageFilter(flt)
            if spec.enable:
                comsim.CoEnableCallCancellation()
            relay = Relay(stream, self)
            return comsim.current_thread_id(), comsim.marshal_interface(relay, IRelay)

        self.tid, relay_stream = await cli.run(client_setup)
        got: list[tuple[Any, ...]] = []
        try:
            rt_name = "deterministic" if self.det else "threaded"
            with anyio.fail_after(BOUND[rt_name]):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._caller, cli, stream, relay_stream, got)
                    if spec.route in ("cocancel", "unit", "deadline"):
                        tg.start_soon(self._route, cli, asked)
        except TimeoutError:
            if spec.endless and spec.reject == 1.0 and spec.route != "none":
                self._bad(f"the call was still pending {BOUND[rt_name]} s on: the route did "
                          "not end its retry delay (R16, R28, R31, R32)")
            else:
                self._bad("no end in bounded time")
            ctx.record(op, ("hang",))
            await cli.shutdown()
            await srv.shutdown()
            return
        self._check(got[0] if got else None, target, rej, flt)
        await cli.shutdown()
        await srv.shutdown()
        ctx.record(op, ("done",))

    async def _caller(self, cli: Any, stream: Any, relay_stream: Any,
                      got: list[tuple[Any, ...]]) -> None:
        spec = self.spec
        tag = spec.op
        if spec.nested:
            async def from_mta() -> tuple[Any, ...]:
                relay = comsim.unmarshal_interface(relay_stream)
                try:
                    return tuple(await relay.Relay(tag))
                finally:
                    relay.Release()

            try:
                got.append(await self.rt.mta.run(from_mta))
            except comsim.COMError as exc:
                got.append(("relay_hr", exc.hresult))
            return
        if spec.route == "task":
            async def scoped() -> tuple[Any, ...]:
                with anyio.move_on_after(spec.at):
                    return await self.call(stream, tag)
                return ("cancelled",)

            got.append(await cli.run(scoped))
        elif spec.route == "deadline":
            with self.deadline:  # cancelled by the route (R32: the unit is cancelled)
                got.append(await cli.run(self.call, stream, tag))
                return
            got.append(("cancelled",))
        else:
            got.append(await cli.run(self.call, stream, tag))

    async def _route(self, cli: Any, asked: Any) -> None:
        """Once the caller is first in its retry delay (RetryRejectedCall asked), and ``at``."""
        spec = self.spec
        if spec.reject == 1.0:
            await asked.Wait(0, comsim.INFINITE)  # from no apartment: a plain wait
        if spec.at:
            await anyio.sleep(spec.at)
        if self.log:  # already over (a finite sequence)
            return
        if spec.route == "deadline":
            self.deadline.cancel()
        elif spec.route == "cocancel":
            if spec.from_unit:
                self.status = await cli.run(self._cocancel, self.tid, spec.grace)
            else:
                self.status = await self.rt.mta.run(self._cocancel, self.tid, spec.grace)
        else:
            await cli.run(self._unit)

    async def _cocancel(self, tid: int, grace: float) -> int:
        try:
            return await comsim.CoCancelCall(tid, grace)
        except comsim.COMError as exc:
            return exc.hresult

    async def _unit(self) -> None:
        self.log.append(("unit", bool(self.log)))
        spec = self.spec
        if spec.pending == comsim.PENDINGMSG_WAITDEFPROCESS and spec.endless and not self.log[:-1]:
            self.status = await self._cocancel(0, spec.grace)  # R31 from inside, nested

    def _check(self, got: tuple[Any, ...] | None, target: Target, rej: Rejecter,
               flt: Retrier) -> None:
        spec = self.spec
        calls = [o for o in self.log if o[0] == "call"]
        if not calls and spec.route == "deadline" and got == ("cancelled",) and spec.reject < 1:
            return  # cancelled before the unit started (R32); the route did not wait for it
        if len(calls) != 1:
            self._bad(f"{len(calls)} outcomes of the call: {calls}")
            return
        out = calls[0][1]
        if spec.nested and got != out and got is not None:
            self._bad(f"the relay gave {got}, its call {out}")
        if out[0] == "value":
            if out[1] != value_of(spec.op):
                self._bad(f"value {out[1]} (R11)")
            if spec.endless and spec.reject == 1.0:
                self._bad("a value, but every call is rejected")
        elif out[0] == "hr":
            if out[1] not in spec.allowed():
                self._bad(f"{hr.name(out[1])}, allowed "
                          f"{sorted(hr.name(h) for h in spec.allowed())} or the value")
        elif out[0] == "cancelled":
            if spec.route not in ("task", "deadline"):
                self._bad("the caller's task was cancelled, but nothing cancels it (R32)")
        else:
            self._bad(f"{out} reached the caller")
        if spec.reject == 1.0 and target.calls:
            self._bad(f"the server ran {target.calls} times though its filter rejects all (R16)")
        endless_all = spec.endless and spec.reject == 1.0
        if endless_all and spec.route in ("task", "deadline") and out != ("cancelled",):
            self._bad(f"{_fmt(out)}: the task's cancel must end the retry delay (R32)")
        if spec.reject == 1.0 and out == ("hr", hr.RPC_E_CALL_REJECTED):
            first = next(i for i, a in enumerate(spec.retry) if gives_up(a))
            if flt.retries != first + 1:
                self._bad(f"RetryRejectedCall asked {flt.retries} times, it gives up at answer "
                          f"{first + 1} (R16: no retry limit)")
        want = (comsim.PENDINGTYPE_NESTED if spec.nested else comsim.PENDINGTYPE_TOPLEVEL)
        if any(p != want for p in flt.pendings):
            self._bad(f"MessagePending's pending_type {flt.pendings}, not {want} (R16)")
        status = self.status
        if spec.route == "cocancel" and status is not None:
            # R28's grace rule: the call may end otherwise in the grace period (COMPLETE)
            ok = ({hr.S_OK, hr.E_NOINTERFACE, hr.RPC_E_CALL_CANCELED, hr.RPC_E_CALL_COMPLETE}
                  if spec.enable
                  else {hr.E_NOINTERFACE, hr.CO_E_CANCEL_DISABLED})
            if status not in ok:
                self._bad(f"CoCancelCall gave {hr.name(status)} (R31)")
            if status == hr.RPC_E_CALL_COMPLETE and out == ("hr", hr.RPC_E_CALL_CANCELED):
                self._bad("CoCancelCall gave RPC_E_CALL_COMPLETE, the call RPC_E_CALL_CANCELED "
                          "(R28)")
            if status == hr.S_OK and out != ("hr", hr.RPC_E_CALL_CANCELED):
                self._bad(f"CoCancelCall gave S_OK, the call {_fmt(out)} (R31)")
            if endless_all and out != ("hr", hr.RPC_E_CALL_CANCELED):
                self._bad(f"{_fmt(out)}: CoCancelCall must end the retry delay (R31)")
        units = [o for o in self.log if o[0] == "unit"]
        if spec.route == "unit" and units and flt.pendings:
            # MessagePending was asked about the unit: the call was pending as it arrived
            ran_after = units[0][1]
            if spec.pending in (comsim.PENDINGMSG_WAITNOPROCESS, comsim.PENDINGMSG_CANCELCALL):
                if not ran_after:
                    self._bad(f"MessagePending said {PENDING_NAMES[spec.pending]}, but the "
                              "unit started before the call ended (R16)")
                if (spec.pending == comsim.PENDINGMSG_CANCELCALL
                        and out != ("hr", hr.RPC_E_CALL_CANCELED)):
                    self._bad(f"MessagePending said CANCELCALL, the call {_fmt(out)} (R16)")
            elif endless_all:
                if ran_after:
                    self._bad("MessagePending said WAITDEFPROCESS, but the unit started only "
                              "after the call ended (R16, R2)")
                if self.status != hr.S_OK or out != ("hr", hr.RPC_E_CALL_CANCELED):
                    self._bad(f"CoCancelCall(0) from the nested unit gave "
                              f"{hr.name(self.status) if self.status is not None else None}, "
                              f"the call {_fmt(out)} (R31)")
        if spec.route == "unit" and endless_all and not units:
            self._bad("the unit never ran")


def _fmt(o: tuple[Any, ...]) -> str:
    return f"{o[0]} {hr.name(o[1])}" if o[0] in ("hr", "relay_hr") else " ".join(map(str, o))


# =========================================================================== flood
async def _flood(rt: comsim.Runtime, spec: FloodSpec, ctx: Any, det: bool) -> None:
    op = spec.op
    ctx.started.add(op)
    srv = await rt.create_sta(f"r{op}")
    rej = Rejecter(op * 17 + 5, spec.reject)

    def bad(text: str) -> None:
        ctx.violation(f"flood op {op} ({spec.n} calls, reject={spec.reject}): {text}")

    async def serve() -> tuple[Any, Any]:
        comsim.CoRegisterMessageFilter(rej)
        obj = Target()
        return obj, comsim.marshal_interface(obj, ITarget, flags=comsim.MSHLFLAGS.TABLESTRONG)

    target, stream = await srv.run(serve)
    busy_in = comsim.ManualResetEvent()

    async def busy() -> str:
        busy_in.Signal()
        await anyio.sleep(spec.busy)  # not a COM wait: the thread is busy (R2)
        return "busy done"

    async def callers() -> list[tuple[Any, ...]]:
        proxy = comsim.unmarshal_interface(stream)
        outs: list[tuple[Any, ...]] = [("none",)] * spec.n

        async def one(i: int) -> None:
            try:
                outs[i] = ("value", await proxy.Ping(i))
            except comsim.COMError as exc:
                outs[i] = ("hr", exc.hresult)
            except Exception as exc:
                outs[i] = ("exc", repr(exc))

        try:
            async with anyio.create_task_group() as tg:
                for i in range(spec.n):
                    tg.start_soon(one, i)
        finally:
            proxy.Release()
        return outs

    cli = await rt.create_sta(f"fc{op}") if spec.from_sta else rt.mta
    result: dict[str, Any] = {}

    async def blocker() -> None:
        try:
            result["busy"] = await srv.run(busy)
        except BaseException as exc:
            result["busy"] = repr(exc)
            raise

    async with anyio.create_task_group() as tg:
        tg.start_soon(blocker)
        await busy_in.Wait(0, comsim.INFINITE)
        result["calls"] = await cli.run(callers)
    if result.get("busy") != "busy done":
        bad(f"the busy unit ended with {result.get('busy')!r}")
    outs = result["calls"]
    for i, o in enumerate(outs):
        if o == ("value", value_of(i)) and spec.reject < 1.0:
            continue
        if o != ("hr", hr.RPC_E_CALL_REJECTED):
            bad(f"call {i}: {_fmt(o)}, allowed RPC_E_CALL_REJECTED"
                + (" or the value" if spec.reject < 1.0 else "") + " (R16)")
            break
    if spec.reject == 1.0 and target.calls:
        bad(f"the server ran {target.calls} calls though its filter rejects all (R16)")
    if rej.asked != spec.n:
        bad(f"HandleInComingCall asked {rej.asked} times for {spec.n} calls, none retried "
            "(R16)")
    if spec.from_sta:
        await cli.shutdown()
    await srv.shutdown()
    ctx.record(op, ("done",))
