"""Call objects used by several tasks at once (R21-R25, R28, R32), in scenarios of their own.

A ``CallObjSpec`` begins one call (``Begin_Work``) on a call object of a proxy, from the MTA or
an STA of its own, to an object (``Slow``, cooperative: it ignores cancels unless it polls)
in the MTA or an STA of its own. The server method signals ``started``, may poll
``CoTestCancel`` until told (then signals ``saw``), and waits for ``gate`` before it returns
(or fails, R14). Then, by ``kind``:

- ``"two_finish"``: two tasks await ``Finish_`` at once; the first to get the result may
  ``Begin_`` again at once and finish that call too (``rebegin``). Each call's outcome goes to
  exactly one ``Finish_``; every other ``Finish_`` gives ``RPC_E_CALL_COMPLETE`` (R21, R22);
  none hangs.
- ``"release_finish"``: a task awaits ``Finish_``; the last ``Release`` comes meanwhile (R25:
  allowed, does not cancel the call). The waiter ends at once without the call's result
  (``E_FAIL``: comsim's answer on a released call object, or ``RPC_E_CALL_COMPLETE``); the
  server runs to its end, and nothing leaks.
- ``"release_cancel"``: a task waits in ``Cancel(seconds)`` (no limit, or a limit) for the
  server that was told and ignores it; the last ``Release`` comes meanwhile: ``Cancel`` ends
  with ``RPC_E_CALL_COMPLETE`` (released) or ``S_OK`` (its limit passed first) (R25, R28).
- ``"finish_cancelled"``: a task waits in ``Cancel(no limit)`` on a server that ignores it
  while another, in ``Finish_``, is cancelled (R32): the call ends cancelled at once (that
  ``Cancel`` gives ``S_OK``), ``TestCancel`` then gives ``RPC_E_CALL_COMPLETE``, and the call
  object begins and finishes a new call (R22, R28).

At the end, the gate open, the server object is back to its creator's one reference once the
proxy is let go (R7, R25: nothing leaks) and the server ran its call to its end.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import anyio

import comsim
from comsim import hresult as hr

KINDS = ("two_finish", "release_finish", "release_cancel", "finish_cancelled")
NO_LIMIT = comsim.RPC_C_CANCEL_INFINITE_TIMEOUT
SETTLE = {"deterministic": 5.0, "threaded": 2.0}


def work_value(tag: int) -> int:
    return tag * 11 + 4


@dataclass
class CallObjSpec:
    op: int
    kind: str  # one of KINDS
    client: str  # "mta" | "sta"
    server: str  # "mta" | "sta"
    fail: int | None  # the server method fails with this (R14)
    rebegin: bool = False  # two_finish: the first finisher begins again at once
    seconds: float = -1  # release_cancel: Cancel's seconds (-1: no limit)
    pause: float = 0.0  # before the concurrent action (release, cancel of the task)
    lone: bool = False  # the proxy goes right after CreateCall

    def describe(self) -> list[str]:
        opts = [f"client={self.client}", f"server={self.server}"]
        if self.fail is not None:
            opts.append(f"fail={hr.name(self.fail)}")
        if self.rebegin:
            opts.append("rebegin")
        if self.kind == "release_cancel":
            opts.append(f"Cancel({self.seconds})")
        if self.pause:
            opts.append(f"pause={self.pause}")
        if self.lone:
            opts.append("lone")
        return [f"  call object op {self.op}: {self.kind} " + " ".join(opts)]

    async def run(self, rt: comsim.Runtime, ctx: Any, det: bool) -> None:
        await CallObjRun(rt, self, ctx, det).run()


def generate_callobj(rng: random.Random, op: int) -> CallObjSpec:
    kind = rng.choice(KINDS)
    client = rng.choice(("mta", "sta"))
    server = rng.choice(("mta", "sta")) if client == "sta" else "sta"
    spec = CallObjSpec(op, kind, client, server,
                       rng.choice((hr.E_INVALIDARG, -2147220991)) if rng.random() < 0.2 else None)
    spec.rebegin = kind == "two_finish" and rng.random() < 0.6
    if kind == "release_cancel":
        spec.seconds = rng.choice((-1, NO_LIMIT, -1, 0.003, 5))
    spec.pause = rng.choice((0.0, 0.0, 0.001, 0.005))
    spec.lone = rng.random() < 0.4
    return spec


class ISlow(comsim.Interface):
    async def Work(self, started: Any, saw: Any, gate: Any, watch: bool, fail: int | None,
                   tag: int) -> int: ...


AsyncISlow = comsim.async_interface(ISlow)


class Slow(comsim.CoClass, ISlow):
    cancel_policy = "cooperative"  # a cancel reaches it only through CoTestCancel (R30)

    def __init__(self) -> None:
        super().__init__()
        self.done = 0

    async def Work(self, started: Any, saw: Any, gate: Any, watch: bool, fail: int | None,
                   tag: int) -> int:
        started.Signal()
        try:
            if watch:
                while comsim.CoTestCancel() != hr.RPC_E_CALL_CANCELED:
                    await anyio.sleep(0.0005)
                saw.Signal()
            await gate.Wait(0, comsim.INFINITE)  # ignores the cancel: runs on
        finally:
            self.done += 1
        if fail is not None:
            raise comsim.COMError(fail, "the plan says so")
        return work_value(tag)


def _events(n: int) -> list[Any]:
    return [comsim.ManualResetEvent() for _ in range(n)]


async def _outcome(aw: Any) -> tuple[Any, ...]:
    try:
        return ("value", await aw)
    except comsim.COMError as exc:
        return ("hr", exc.hresult)


class CallObjRun:
    def __init__(self, rt: comsim.Runtime, spec: CallObjSpec, ctx: Any, det: bool) -> None:
        self.rt, self.spec, self.ctx, self.det = rt, spec, ctx, det
        self.began = 0  # calls begun on the server

    def _bad(self, text: str) -> None:
        s = self.spec
        self.ctx.violation(f"call object op {s.op} ({s.kind}, client {s.client}, server "
                           f"{s.server}): {text}")

    def _result(self, tag: int) -> tuple[Any, ...]:
        f = self.spec.fail
        return ("hr", f) if f is not None else ("value", work_value(tag))

    async def run(self) -> None:
        spec, rt, ctx = self.spec, self.rt, self.ctx
        op = spec.op
        ctx.started.add(op)
        own: list[Any] = []
        if spec.server == "sta":
            own.append(await rt.create_sta(f"w{op}"))
        srv = own[0] if own else rt.mta
        if spec.client == "sta":
            own.append(await rt.create_sta(f"k{op}"))
        cli = own[-1] if spec.client == "sta" else rt.mta

        async def make() -> tuple[Slow, Any]:
            obj = Slow()
            return obj, comsim.marshal_interface(obj, ISlow)

        obj, stream = await srv.run(make)
        gates: list[Any] = []
        try:
            await cli.run(getattr(self, spec.kind), stream, gates)
        except Exception as exc:
            self._bad(f"the client code raised {exc!r}")
        for g in gates:
            g.Signal()  # the server runs to its end (R25)
        await self._settle(srv, obj)
        for a in own:
            await a.shutdown()
        ctx.record(op, ("done",))

    async def _settle(self, srv: Any, obj: Slow) -> None:
        async def held() -> int:
            n = int(obj.AddRef())
            obj.Release()
            return n - 2

        loop_time = anyio.current_time
        end = loop_time() + SETTLE["deterministic" if self.det else "threaded"]
        while True:
            n = await srv.run(held)
            if n == 0 and obj.done >= self.began:
                return
            if n < 0:
                self._bad(f"the server object was released once too often ({n + 1}) (R7)")
                return
            if loop_time() >= end:
                self._bad(f"at the end: the server object still held ({n} besides its "
                          f"creator's) and {obj.done} of {self.began} calls ran to their end "
                          "(R7, R25: nothing leaks, the server runs to completion)")
                return
            await anyio.sleep(0.002)

    def _call(self, stream: Any) -> tuple[Any, Any]:
        proxy = comsim.unmarshal_interface(stream)
        factory = proxy.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(AsyncISlow)
        factory.Release()
        if self.spec.lone:
            proxy.Release()
            proxy = None
        return proxy, call

    def _begin(self, call: Any, watch: bool, tag: int, gates: list[Any]) -> list[Any]:
        ev = _events(3)
        gates.append(ev[2])
        call.Begin_Work(ev[0], ev[1], ev[2], watch, self.spec.fail, tag)
        self.began += 1
        return ev

    def _let_go(self, proxy: Any, call: Any, *more: Any) -> None:
        for x in more:
            x.Release()
        left = call.Release()
        if left != 0:
            self._bad(f"the last Release of the call object gave {left} (R25)")
        if proxy is not None:
            proxy.Release()

    # ------------------------------------------------------------- the kinds
    async def two_finish(self, stream: Any, gates: list[Any]) -> None:
        spec = self.spec
        proxy, call = self._call(stream)
        ev = self._begin(call, False, spec.op, gates)
        outs: dict[str, list[tuple[Any, ...]]] = {"b": [], "a": []}
        second: list[int] = []

        async def b(entered: anyio.Event) -> None:
            entered.set()
            o = await _outcome(call.Finish_Work())
            outs["b"].append(o)
            if spec.rebegin:
                try:
                    ev2 = self._begin(call, False, spec.op + 1, gates)
                except comsim.COMError as exc:
                    second.append(exc.hresult)
                    return
                second.append(hr.S_OK)
                ev2[2].Signal()
                outs["b"].append(await _outcome(call.Finish_Work()))

        async def a(entered: anyio.Event) -> None:
            entered.set()
            outs["a"].append(await _outcome(call.Finish_Work()))

        async with anyio.create_task_group() as tg:
            e1, e2 = anyio.Event(), anyio.Event()
            tg.start_soon(b, e1)
            await e1.wait()
            tg.start_soon(a, e2)
            await e2.wait()
            if spec.pause:
                await anyio.sleep(spec.pause)
            ev[2].Signal()
        self._let_go(proxy, call)
        got = outs["a"] + outs["b"]
        want = [self._result(spec.op)]
        if second == [hr.S_OK]:
            want.append(self._result(spec.op + 1))
        elif second and not (second == [hr.RPC_E_CALL_PENDING] and outs["b"][0] == (
                "hr", hr.RPC_E_CALL_COMPLETE)):
            self._bad(f"Begin_ after Finish_ gave {hr.name(second[0])} (R22)")
        rest = list(got)
        for w in want:
            if w in rest:
                rest.remove(w)
            else:
                self._bad(f"the Finish_ calls gave {got}: no one took the call's outcome {w} "
                          "(R22)")
        if any(o != ("hr", hr.RPC_E_CALL_COMPLETE) for o in rest):
            self._bad(f"the Finish_ calls gave {got}; each call's outcome once, every other "
                      "Finish_ RPC_E_CALL_COMPLETE (R21, R22)")

    async def release_finish(self, stream: Any, gates: list[Any]) -> None:
        spec = self.spec
        proxy, call = self._call(stream)
        ev = self._begin(call, False, spec.op, gates)
        got: list[tuple[Any, ...]] = []

        async def finisher(entered: anyio.Event) -> None:
            entered.set()
            got.append(await _outcome(call.Finish_Work()))

        async with anyio.create_task_group() as tg:
            e = anyio.Event()
            tg.start_soon(finisher, e)
            await e.wait()
            if spec.pause:
                await anyio.sleep(spec.pause)
            self._let_go(proxy, call)  # R25: the last reference, with Finish_ waiting
        if got[0] not in (("hr", hr.E_FAIL), ("hr", hr.RPC_E_CALL_COMPLETE)):
            self._bad(f"Finish_ waiting as the last Release came gave {got[0]}; the gate is "
                      "shut, so no result came (R25)")
        del ev

    async def release_cancel(self, stream: Any, gates: list[Any]) -> None:
        spec = self.spec
        proxy, call = self._call(stream)
        ev = self._begin(call, True, spec.op, gates)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        await ev[0].Wait(0, comsim.INFINITE)
        got: list[int] = []

        async def canceller() -> None:
            got.append(await cancel.Cancel(spec.seconds))

        async with anyio.create_task_group() as tg:
            tg.start_soon(canceller)
            await ev[1].Wait(0, comsim.INFINITE)  # the server was told: the grace period
            if spec.pause:
                await anyio.sleep(spec.pause)
            self._let_go(proxy, call, cancel)  # R25, with Cancel waiting
        ok = {hr.RPC_E_CALL_COMPLETE} | ({hr.S_OK} if spec.seconds not in (-1, NO_LIMIT)
                                         else set())
        if got[0] not in ok:
            self._bad(f"Cancel({spec.seconds}) waiting as the last Release came gave "
                      f"{hr.name(got[0])}, allowed {sorted(hr.name(h) for h in ok)} (R25, R28)")

    async def finish_cancelled(self, stream: Any, gates: list[Any]) -> None:
        spec = self.spec
        proxy, call = self._call(stream)
        ev = self._begin(call, True, spec.op, gates)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        await ev[0].Wait(0, comsim.INFINITE)
        got: list[int] = []
        fin: list[tuple[Any, ...]] = []
        scope = anyio.CancelScope()

        async def canceller() -> None:
            got.append(await cancel.Cancel(NO_LIMIT))

        async def finisher() -> None:
            with scope:
                fin.append(await _outcome(call.Finish_Work()))
            if scope.cancelled_caught:
                fin.append(("cancelled",))

        async with anyio.create_task_group() as tg:
            tg.start_soon(finisher)
            tg.start_soon(canceller)
            await ev[1].Wait(0, comsim.INFINITE)  # Cancel is in its grace period
            if spec.pause:
                await anyio.sleep(spec.pause)
            scope.cancel()  # R32: the task awaiting Finish_
        tested = cancel.TestCancel()
        if fin != [("cancelled",)] or got != [hr.S_OK] or tested != hr.RPC_E_CALL_COMPLETE:
            self._bad(f"Finish_ cancelled during Cancel(no limit): Finish_ {fin}, Cancel "
                      f"{[hr.name(g) for g in got]}, then TestCancel {hr.name(tested)}; R32: "
                      "the call ends cancelled at once (S_OK), the call object idle "
                      "(RPC_E_CALL_COMPLETE)")
        try:
            ev2 = self._begin(call, False, spec.op + 1, gates)
        except comsim.COMError as exc:
            self._bad(f"Begin_ after the cancelled Finish_ gave {hr.name(exc.hresult)} (R32)")
        else:
            ev2[2].Signal()
            o = await _outcome(call.Finish_Work())
            if o != self._result(spec.op + 1):
                self._bad(f"the new call's Finish_ gave {o}, not {self._result(spec.op + 1)}")
        self._let_go(proxy, call, cancel)
