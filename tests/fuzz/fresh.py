"""Calls on objects of their own, counted to the end (R25, R7, R34, R18, R5, R12, R14).

A ``FreshSpec`` is plain data drawn from the program's random stream: an object (``Fresh``)
made for this op alone in one of the program's apartments (``server``: an STA, the MTA or the
NA) and marshalled NORMAL, so that the client's proxy manager holds its stub's only strong
reference (R7); client code that unmarshals it and calls it, from one of five places
(``client``):

- ``"sta"``: an STA of its own, made for the op (``rt.create_sta``);
- ``"na_sta"``: NA code entered from such an STA (R5: its replies come to that STA);
- ``"mta"``, ``"na_mta"``: the MTA, NA code entered from the MTA;
- ``"na_none"``: NA code entered from no apartment (``await rt.nta.run(...)`` on the host's
  loop: its replies come to that loop).

The call is synchronous, or ``Begin_Op`` on a call object (R19-R22), sometimes with the proxy
released right after ``CreateCall`` (``lone``: the call object holds the manager's only count,
R25, R34). The method sleeps (simulated work), then returns a value, a new object (``gift``:
an object reference in the reply, R11, whose stub the reply holds until it is taken in or
dropped, R7) or fails (R14). The call object ends (``end``) by ``Finish_`` and ``Release``, by
``Release`` with the call in flight on the client's own thread (R25), or is handed to the host,
which releases it from no apartment (``"host"``; on the threaded runtime another OS thread) or
from a new OS thread (``"thread"``, threaded runtime only; on the deterministic runtime as
``"host"``). An op with an STA of its own may shut it down (``shut``, R18) at a chosen point:
``"self"`` from the client code after its end action (NA code: from inside the NA),
``"host_while"`` from the host while the client code runs, ``"host_before"`` /
``"host_during"`` / ``"host_after"`` the handed-off Release (or the end of the client code).
What the client code holds is released in ``finally``, also when the shutdown cancels it (R12:
Release is always allowed; an NA proxy does not go with the STA under it). Some call objects
have an ``outer`` (R24). On the threaded runtime some ops widen the windows of races between
threads: the client code keeps its STA's thread busy for a moment after handing the call
object over (``busy``: a blocking wait, not a COM wait, so the reply waits in its inbox while
the host shuts the STA down and releases), the release often timed to meet the thread's
return, and the call object's machine dawdles just after the steps of the reply and of the
release (``jitter``, ``Jitter``): a Release from another thread then lands between the
client's steps of taking a reply in, in its teardown too.

Checked: one outcome per op, from what R14/R18/R25 allow; every ``Release`` of a call object
gives 0 and raises nothing (R25, R12); ``outer.Signal()`` at most once, exactly once for a
call that ``Finish_`` saw end, in the client's apartment (R24); releasing the marshal data
afterwards does nothing (R7);
and, at the program's end, once every reference the program took has been released and every
reply taken in or dropped, each ``Fresh`` object and each gift has gone back to its creator's
one reference: its stub has gone (R7, R25: "nothing leaks"; R18: the client's shutdown lets go
of what a reply it never takes in would have), and only once (a count below it).
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

import comsim
from comsim import hresult as hr
from comsim._core.callobj import CallMachine, Input

CLIENTS = ("sta", "na_sta", "mta", "na_mta", "na_none")
ENDS = ("finish", "release", "host", "thread")
SHUTS = ("self", "host_while", "host_before", "host_during", "host_after")
GONE = frozenset({hr.RPC_E_DISCONNECTED, hr.CO_E_OBJNOTCONNECTED})
FAILS = (hr.E_FAIL, hr.E_INVALIDARG)
#: how long the end-of-program check waits for the last replies: virtual seconds
#: (deterministic), real seconds (threaded)
SETTLE = {"deterministic": 5.0, "threaded": 2.0}


def fresh_value(op: int) -> int:
    """What ``Fresh.Op`` returns for tag ``op``."""
    return op * 5 + 2


@dataclass
class FreshSpec:
    op: int
    server: int  # apartment index of the object (an STA, the MTA or the NA)
    client: str  # one of CLIENTS
    kind: str  # "sync" | "async"
    sleep: float  # the method's work
    gift: bool  # its result is a new object of the server's apartment (R11)
    fail: int | None  # the method raises COMError(fail) (R14)
    lone: bool = False  # async: the proxy goes right after CreateCall
    end: str = "finish"  # async: one of ENDS
    pre: float = 0.0  # async: the client's sleep between Begin_ and its end action
    later: float = 0.0  # "host"/"thread": the hand-off's wait before Release
    shut: str | None = None  # an STA of its own: one of SHUTS
    shut_delay: float = 0.0
    delay: float = 0.0  # the op starts this late
    outer: bool = False  # async: CreateCall(AsyncIFresh, outer) (R24)
    jitter: bool = False  # async, threaded runtime: the call object's steps dawdle (``Jitter``)
    #: "host"/"thread" from an STA of its own: once it handed the call object over, the client
    #: code keeps its thread busy this long (a plain blocking wait, not a COM wait, R2: replies
    #: wait in its inbox) while the host goes on at once (threaded runtime; deterministic: a
    #: sleep, the host going on once the client code has ended)
    busy: float = 0.0

    @property
    def own_sta(self) -> bool:
        return self.client in ("sta", "na_sta")


def generate_fresh(rng: random.Random, op: int, n_sta: int) -> FreshSpec:
    """A fresh-object op over a program of ``n_sta`` STAs (the MTA is ``n_sta``, the NA
    ``n_sta + 1``)."""
    mta, na = n_sta, n_sta + 1
    client = rng.choice(CLIENTS)
    servers = [a for a in range(n_sta + 2)
               if not (a == na and client.startswith("na")) and not (a == mta and client == "mta")]
    spec = FreshSpec(op, rng.choice(servers), client, "sync" if rng.random() < 0.2 else "async",
                     rng.choice((0.0, 0.0, 0.001, 0.003, 0.01)), rng.random() < 0.4,
                     rng.choice(FAILS) if rng.random() < 0.1 else None)
    if spec.kind == "async":
        spec.lone = rng.random() < 0.5
        spec.end = rng.choice(("finish", "release", "release", "host", "thread"))
        spec.pre = rng.choice((0.0, 0.0, 0.001, 0.005))
        spec.later = rng.choice((0.0, 0.0, 0.001, 0.005))
    if spec.own_sta and rng.random() < 0.7:
        spec.shut = rng.choice((*SHUTS, "host_during"))
        spec.shut_delay = rng.choice((0.0, 0.0, 0.001, 0.003, 0.01))
    if rng.random() < 0.3:
        spec.delay = rng.choice((0.001, 0.005, 0.02))
    spec.outer = spec.kind == "async" and rng.random() < 0.4
    if spec.own_sta and spec.end in ("host", "thread") and rng.random() < 0.6:
        spec.busy = rng.choice((0.001, 0.003))
        if rng.random() < 0.5:
            spec.later = spec.busy  # the Release as the client's thread comes back to its loop
    spec.jitter = spec.kind == "async" and rng.random() < (0.8 if spec.busy else 0.3)
    return spec


def generate_race(rng: random.Random, op: int, n_sta: int) -> FreshSpec:
    """A fresh-object op aimed at the client's teardown (threaded runtime): a call object
    begun from an STA of its own (or NA code on it), its reply due at once, handed over while
    the STA's thread is busy; the host shuts the STA down and releases the call object from
    another thread just as the thread comes back and its teardown takes the reply in (or after
    the teardown), the machine dawdling in between (R25, R12, R18, R7, R34)."""
    client = rng.choice(("sta", "na_sta"))
    servers = [a for a in range(n_sta + 2) if not (a == n_sta + 1 and client == "na_sta")]
    busy = rng.choice((0.001, 0.003))
    return FreshSpec(op, rng.choice(servers), client, "async", rng.choice((0.0, 0.0, 0.001)),
                     rng.random() < 0.5, None, lone=rng.random() < 0.5,
                     end=rng.choice(("host", "thread")),
                     later=rng.choice((busy, busy, busy / 2, 0.0)),
                     shut=rng.choice(("host_during", "host_during", "host_before")),
                     outer=rng.random() < 0.3, jitter=True, busy=busy)


def describe_fresh(spec: FreshSpec, name: Any) -> list[str]:
    opts = [f"sleep={spec.sleep}"]
    if spec.gift:
        opts.append("gift")
    if spec.fail is not None:
        opts.append(f"fail={hr.name(spec.fail)}")
    if spec.kind == "async":
        opts.append(f"end={spec.end}")
        if spec.lone:
            opts.append("lone")
        if spec.outer:
            opts.append("outer")
        if spec.jitter:
            opts.append("jitter")
        if spec.busy:
            opts.append(f"busy={spec.busy}")
        if spec.pre:
            opts.append(f"pre={spec.pre}")
        if spec.later and spec.end in ("host", "thread"):
            opts.append(f"later={spec.later}")
    if spec.shut is not None:
        opts.append(f"shut={spec.shut} after {spec.shut_delay}")
    if spec.delay:
        opts.append(f"after {spec.delay} s")
    return [f"  fresh op {spec.op}: {spec.kind} {spec.client} -> object in {name(spec.server)} "
            + " ".join(opts)]


def allowed(spec: FreshSpec, prog: Any) -> set[int]:
    """The failure HRESULTs R14, R16 and R18 allow the op."""
    out: set[int] = set()
    if spec.fail is not None and (spec.kind == "sync" or spec.end == "finish"):
        out.add(spec.fail)  # R14
    if spec.server in prog.dying:
        out |= GONE  # R18: the object's apartment shut down (made, unmarshalled, called)
    if spec.shut == "host_while":
        out |= GONE  # R18: the client's own apartment shut down under it
    if spec.kind == "sync" and 0 <= spec.server < prog.n_sta:
        flt = prog.filters.get(spec.server)
        if flt is not None and flt[0] > 0:
            out.add(hr.RPC_E_CALL_REJECTED)  # R16: the client has no filter: it gives up
    return out


# =========================================================================== the objects
class IFresh(comsim.Interface):
    async def Op(self, sleep: float, gift: bool, fail: int | None, tag: int) -> Any: ...


AsyncIFresh = comsim.async_interface(IFresh)


class IGift(comsim.Interface):
    async def Tag(self) -> int: ...


class Gift(comsim.CoClass, IGift):
    def __init__(self, tag: int) -> None:
        super().__init__()
        self.tag = tag

    async def Tag(self) -> int:
        return self.tag


class Fresh(comsim.CoClass, IFresh):
    def __init__(self, homes: list[tuple[int, str, Any, int]], home: int) -> None:
        super().__init__()
        self.homes = homes
        self.home = home

    async def Op(self, sleep: float, gift: bool, fail: int | None, tag: int) -> Any:
        if sleep:
            await anyio.sleep(sleep)
        if fail is not None:
            raise comsim.COMError(fail, "the plan says so")
        if gift:
            g = Gift(tag)
            self.homes.append((tag, "gift", g, self.home))
            return g
        return fresh_value(tag)


class Jitter(CallMachine):
    """A call object's machine whose thread, on the threaded runtime, sometimes sleeps a
    little just after a step of the reply or of the release (where the runtime goes on to keep
    or drop the reply, or to keep or let go of the manager), so that another OS thread's step
    may come in between: it widens the windows of races between a Release from another thread
    and the client's loop taking in the reply, also in its teardown (R25, R12, R18). The
    states and steps are CallMachine's own."""

    __slots__ = ("rng",)
    DAWDLE = frozenset({Input.REPLY, Input.REPLY_CANCELED, Input.RELEASE})

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)

    def step(self, inp: Input) -> Any:
        t = super().step(inp)
        if inp in self.DAWDLE and self.rng.random() < 0.7:
            time.sleep(self.rng.choice((0.0002, 0.001, 0.003)))
        return t


class Outer:
    """An ``outer`` for CreateCall: counts ``Signal()``; each must run with the caller's
    apartment ``apt`` current (R24), else ``report`` is told (``role``: how it names ``apt``).
    The fuzz programs' own ops use it too."""

    def __init__(self, report: Callable[[str], None], apt: str, role: str = "client") -> None:
        self.report = report
        self.apt = apt
        self.role = role
        self.count = 0

    def Signal(self) -> None:
        self.count += 1
        cur = comsim.current_apartment()
        if cur is None or cur.name != self.apt:
            self.report(f"outer.Signal() ran in {cur.name if cur else None}, not the "
                        f"{self.role} {self.apt} (R24)")


# =========================================================================== the interpreter
class FreshRun:
    """Runs one ``FreshSpec``: the host's part (``run``, from no apartment) and the client's
    (``client``, at its place). ``ctx`` is the program's ``Context``."""

    def __init__(self, rt: comsim.Runtime, spec: FreshSpec, apts: list[Any], na: int,
                 ctx: Any, det: bool) -> None:
        self.rt = rt
        self.spec = spec
        self.apts = apts
        self.na = na
        self.ctx = ctx
        self.det = det
        self.stream: Any = None
        self.outer: Outer | None = None
        #: set once the client code handed the call object over, or ended (``overlap``: from
        #: the client's thread, through ``_tell``)
        self.handed: asyncio.Future[None] | None = None
        self.overlap = bool(spec.busy) and not det  # the host goes on beside the client code

    def _bad(self, text: str) -> None:
        self.ctx.violation(f"fresh op {self.spec.op} ({self.spec.kind} {self.spec.client}): "
                           + text)

    async def _in(self, apt: int, fn: Any, *args: Any) -> Any:
        if apt == self.na:
            return await self.rt.nta.run(fn, *args)
        return await self.apts[apt].run(fn, *args)

    async def _make(self) -> tuple[Any, Any]:
        obj = Fresh(self.ctx.fresh_homes, self.spec.server)
        return obj, comsim.marshal_interface(obj, IFresh)  # NORMAL: one strong reference (R7)

    def _release(self, x: Any, what: str, want: int | None) -> None:
        try:
            left = x.Release()
        except BaseException as exc:
            self._bad(f"Release of {what} raised {exc!r} (R12, R25: Release is always allowed "
                      "and raises nothing)")
            return
        if want is not None and left != want:
            self._bad(f"Release of {what} gave {left}, not {want} (R25, R34)")

    # ------------------------------------------------------------- the host's part
    async def run(self) -> None:
        spec, ctx = self.spec, self.ctx
        op = spec.op
        if spec.delay:
            await anyio.sleep(spec.delay)
        ctx.started.add(op)
        try:
            obj, self.stream = await self._in(spec.server, self._make)
        except comsim.COMError as exc:  # its apartment has shut down (R18)
            ctx.record(op, ("hr", exc.hresult))
            return
        ctx.fresh_homes.append((op, "object", obj, spec.server))
        own = await self.rt.create_sta(f"f{op}") if spec.own_sta else None
        box: list[Any] = []
        async with anyio.create_task_group() as tg:
            if spec.shut == "host_while":
                tg.start_soon(self._shut, own, spec.shut_delay)
            if self.overlap:
                self.handed = asyncio.get_running_loop().create_future()
                tg.start_soon(self._client_run, own, box)
                await self.handed
                await self._after(own, box)
            else:
                await self._client_run(own, box)
        if not self.overlap:
            await self._after(own, box)

    async def _after(self, own: Any, box: list[Any]) -> None:
        """The host's part once the client code has handed the call object over (or ended):
        the data released, the call object released, the client's STA shut down."""
        spec, ctx = self.spec, self.ctx
        op = spec.op
        call = box[0] if box else None
        if spec.shut == "host_before":
            await self._shut(own, spec.shut_delay)
        if call is not None:
            if spec.shut == "host_during":
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._shut, own, 0.0)
                    await self._hand_off(call)
            else:
                await self._hand_off(call)
            ctx.record(op, ("released",))
        elif spec.shut == "host_during":
            await self._shut(own, spec.shut_delay)
        if spec.shut == "host_after":
            await self._shut(own, spec.shut_delay)
        # what the client never unmarshalled; consumed data: nothing (R7)
        try:
            await self.rt.mta.run(comsim.release_marshal_data, self.stream)
        except comsim.COMError as exc:
            self._bad(f"release_marshal_data afterwards gave {hr.name(exc.hresult)} (R7: "
                      "releasing consumed data does nothing)")

    async def _client_run(self, own: Any, box: list[Any]) -> None:
        spec, ctx = self.spec, self.ctx
        op = spec.op
        try:
            await self._enter(own, box)
        except comsim.COMError as exc:
            if op not in ctx.outcomes and not box:
                ctx.record(op, ("hr", exc.hresult))  # the client code never ran (R18)
            elif not (exc.hresult == hr.RPC_E_DISCONNECTED
                      and (spec.shut in ("self", "host_while")
                           or (self.overlap and spec.shut is not None))):
                self._bad(f"the client's Apartment.run raised {exc!r}")
        except Exception as exc:
            self._bad(f"the client's run raised {exc!r}")
        finally:
            self._tell()

    def _tell(self) -> None:
        """The host may go on (``overlap``); from any thread."""
        fut = self.handed
        if fut is not None:
            fut.get_loop().call_soon_threadsafe(_settle, fut)

    async def _shut(self, own: Any, delay: float) -> None:
        if delay:
            await anyio.sleep(delay)
        await own.shutdown()

    async def _hand_off(self, call: Any) -> None:
        """R12, R25: the last Release of the call object from no apartment, or from an OS
        thread of its own (threaded runtime)."""
        later = self.spec.later
        if self.spec.end == "thread" and not self.det:
            def release() -> None:
                if later:
                    time.sleep(later)
                self._release(call, "the call object (from another OS thread)", 0)

            await _in_thread(release)
            return
        await anyio.sleep(later)
        self._release(call, "the call object (from no apartment)", 0)

    async def _enter(self, own: Any, box: list[Any]) -> None:
        code = functools.partial(self.client, own, box)
        nta = self.rt.nta
        where = self.spec.client
        if where == "sta":
            await own.run(code)
        elif where == "na_sta":
            await own.run(nta.run, code)  # R5
        elif where == "mta":
            await self.rt.mta.run(code)
        elif where == "na_mta":
            await self.rt.mta.run(nta.run, code)
        else:
            await nta.run(code)  # R5: from no apartment

    # ------------------------------------------------------------- the client's part
    async def client(self, own: Any, box: list[Any]) -> None:
        spec, ctx = self.spec, self.ctx
        op = spec.op
        held: list[tuple[Any, str]] = []  # released at the end, whatever happens (R12)
        try:
            p = comsim.unmarshal_interface(self.stream)
            held.append((p, "the proxy"))
            args = (spec.sleep, spec.gift, spec.fail, op)
            if spec.kind == "sync":
                self._result(await p.Op(*args), held)
            else:
                factory = p.QueryInterface(comsim.ICallFactory)
                if spec.outer:
                    name = f"f{op}" if spec.client == "sta" else (
                        "MTA" if spec.client == "mta" else "NA")
                    self.outer = ctx.fresh_outers[op] = Outer(self._bad, name)
                    call = factory.CreateCall(AsyncIFresh, self.outer)
                else:
                    call = factory.CreateCall(AsyncIFresh)
                factory.Release()
                if spec.jitter and not self.det:
                    call._machine = Jitter(op)  # before Begin_: the call's machine
                held.append((call, "the call object"))
                if spec.lone:  # R25, R34: the call object holds the manager's only count
                    held.remove((p, "the proxy"))
                    self._release(p, "the proxy beside its call object", 1)
                call.Begin_Op(*args)
                if spec.pre:
                    await anyio.sleep(spec.pre)
                if spec.end == "finish":
                    self._result(await call.Finish_Op(), held)
                else:
                    held.remove((call, "the call object"))
                    if spec.end == "release":
                        self._release(call, "the call object (its call in flight)", 0)  # R25
                        ctx.record(op, ("released",))
                    else:
                        box.append(call)
                        self._tell()
                        if spec.busy and not self.det:
                            time.sleep(spec.busy)  # busy: not a COM wait (R2)
                        elif spec.busy:
                            await anyio.sleep(spec.busy)
        except comsim.COMError as exc:
            ctx.record(op, ("hr", exc.hresult))
        except asyncio.CancelledError:
            if op not in ctx.outcomes and not box:  # (handed over: the host's to record)
                ctx.record(op, ("cancelled",))
            raise
        except Exception as exc:
            ctx.record(op, ("exc", repr(exc)))
        finally:
            for x, what in reversed(held):
                self._release(x, what, 0 if what == "the call object" else None)
        if spec.shut == "self":
            if spec.shut_delay:
                await anyio.sleep(spec.shut_delay)
            await own.shutdown()  # R18 from inside (NA code: on the STA's thread, R5)
            await anyio.sleep(0)

    def _result(self, value: Any, held: list[tuple[Any, str]]) -> None:
        op = self.spec.op
        if self.spec.gift:
            if not isinstance(value, comsim.Proxy):
                self._bad(f"the gift came as {type(value).__name__}, not a proxy (R11)")
                self.ctx.record(op, ("value", None))
                return
            held.append((value, "the gift's proxy"))
            value = fresh_value(op)
        self.ctx.record(op, ("value", value))


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _in_thread(fn: Any) -> None:
    """``fn()`` on a new OS thread of its own; waits for it, joined."""
    fut = asyncio.get_running_loop().create_future()

    def body() -> None:
        try:
            fn()
        finally:
            fut.get_loop().call_soon_threadsafe(_settle, fut)

    thread = threading.Thread(target=body, name="fuzz-release")
    thread.start()
    await fut
    thread.join()


# =========================================================================== the end
async def _held(obj: Any) -> int:
    """The references on ``obj`` besides its creator's: 1 while a stub holds it (R7)."""
    n = int(obj.AddRef())
    obj.Release()
    return n - 2


async def settle(rt: comsim.Runtime, ctx: Any, apts: list[Any], na: int, det: bool) -> None:
    """Once the program is over: every ``Fresh`` object and gift is back to its creator's one
    reference (its stub gone, R7, R25), waiting for replies still on their way; a count that
    stays up is a leak, one below it a double release."""
    runtime = "deterministic" if det else "threaded"
    loop = asyncio.get_running_loop()
    end = loop.time() + SETTLE[runtime]
    pending = list(ctx.fresh_homes)
    pause = 0.001
    left: list[tuple[tuple[int, str, Any, int], int]] = []
    while pending:
        left = []
        for item in pending:
            _op, _what, obj, home = item
            try:
                if home == na:
                    n = await rt.nta.run(_held, obj)
                else:
                    n = await apts[home].run(_held, obj)
            except comsim.COMError:
                continue  # its apartment has shut down: the stub went with it (R18)
            if n != 0:
                left.append((item, n))
        pending = [item for item, n in left if n > 0]
        for (op, what, _obj, _home), n in left:
            if n < 0:
                ctx.violation(f"fresh op {op}: its {what} was released once too often: "
                              f"{n + 1} references (R7, R34)")
        if not pending or loop.time() >= end:
            break
        await anyio.sleep(pause)
        pause = min(pause * 2, 0.05)
    for op, what, obj, home in pending:
        ctx.violation(f"fresh op {op}: its {what} ({type(obj).__name__} in apartment {home}) is "
                      f"still held by its stub {SETTLE[runtime]} "
                      f"{'virtual' if det else 'real'} s after the program let go of every "
                      "reference: a leak (R7, R25, R34)")


def check_fresh(prog: Any, ctx: Any) -> list[str]:
    """Each op's one outcome against what the rules allow."""
    out: list[str] = []
    for spec in prog.fresh:
        op = spec.op
        outs = ctx.outcomes.get(op, [])
        where = f"fresh op {op} ({spec.kind} {spec.client} -> {prog.name(spec.server)})"
        if len(outs) != 1:
            out.append(f"{where}: {len(outs)} outcomes {outs}")
            continue
        o = outs[0]
        ok = allowed(spec, prog)
        outer = ctx.fresh_outers.get(op)
        if outer is not None:
            ended = o[0] == "value" or (o[0] == "hr" and o[1] == spec.fail)
            if outer.count > 1 or (ended and outer.count != 1):
                out.append(f"{where}: outer.Signal() x{outer.count} for a call that "
                           f"{'ended' if ended else 'may have ended'} (R24: exactly once when "
                           "it ends)")
        if o[0] == "value":
            if spec.fail is not None or o[1] != fresh_value(op):
                out.append(f"{where}: value {o[1]!r}, the server "
                           + (f"fails with {hr.name(spec.fail)} (R14)" if spec.fail is not None
                              else f"returns {fresh_value(op)} (R11)"))
            elif spec.kind == "async" and spec.end != "finish":
                out.append(f"{where}: a value, but the op never calls Finish_")
        elif o[0] == "hr":
            if o[1] not in ok:
                out.append(f"{where}: {hr.name(o[1])}, allowed "
                           f"{sorted(hr.name(h) for h in ok)} or the value")
        elif o[0] == "released":
            if spec.kind != "async" or spec.end == "finish":
                out.append(f"{where}: released?")
        elif o[0] == "cancelled":
            if spec.shut != "host_while":
                out.append(f"{where}: cancelled, but nothing shuts its apartment down while it "
                           "runs (R18)")
        else:
            out.append(f"{where}: {o} (a plain exception reached the client)")
    return out
