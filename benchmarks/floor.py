"""How low could a cross-apartment call go? Two stripped-down prototypes beside comsim, all with
both threads on one CPU, each beside two bare asyncio loops measured in the same run.

    python benchmarks/floor.py [--n 6000]

Both prototypes move messages as comsim does: an inbox per loop, comsim's apartment loop
(``ApartmentLoop``: lazy polls, one read per wake-up), and ``futures.resume``, which lets the
task a message wakes go on in the turn that takes the message in.

- ``bare shape``: the leanest call of comsim's shape and no rules: a server task reused inside
  one cancel scope, four call-object table steps, one STA wait record.
- ``shape + rule work``: the same, plus the work comsim's rules ask of every call, done with
  comsim's own core objects: apartment and connection checks (R12, R17), argument binding and
  by-value packing (R11), call ids and causality ids (R15), the STA scheduler (R2), the
  server-side stage table under a lock (R29), the outgoing-call stack (R31), the running count
  (R17), the context variable for code in the method, a reply record and trace checks.
- ``comsim``: a synchronous STA->STA call with ``Runtime(cpu=N)``.

Neither prototype is a COM runtime (no shutdown, cancellation, filters or errors); they exist
to show what the rules cost in pure Python, apart from how comsim is written.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import latency

from comsim._core import rules
from comsim._core.callobj import CallMachine, Input
from comsim._core.sta import StaScheduler, Unit, UnitKind, WaitKind
from comsim._core.stub import Connection, StubCall
from comsim._core.stub import Input as StubInput
from comsim._runtime import trace
from comsim._runtime.loop import ApartmentLoop, resume
from comsim._runtime.wire import pack

WHERE: contextvars.ContextVar[Any] = contextvars.ContextVar("floor_where", default=None)
ADD = latency.ICalc._com_methods_["Add"]


class _Loop:
    """One apartment-like thread: a loop (pinned to ``cpu``), an inbox, idle server tasks."""

    def __init__(self, cpu: int | None) -> None:
        self.inbox: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque())
        self.idle: list[asyncio.Future[Any]] = []
        self.sched = StaScheduler()
        self.accepting = True
        self.loop: asyncio.AbstractEventLoop
        ready = threading.Event()

        def main() -> None:
            latency._pin(cpu)
            self.loop = ApartmentLoop()
            ready.set()
            self.loop.run_forever()
            self.loop.close()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        self.inbox.append((fn, args))
        self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        inbox = self.inbox
        while inbox:
            fn, args = inbox.popleft()
            fn(*args)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


class _Call:
    __slots__ = ("args", "caller_thread", "cancellable", "causality_id", "client", "id",
                 "machine", "method", "owner", "reply", "sent_at", "server", "spec", "sstate",
                 "stub", "tracing", "waiters")
    args: Any
    caller_thread: int
    cancellable: bool
    causality_id: int
    client: _Loop
    id: int
    machine: CallMachine
    method: str
    owner: Any
    reply: Any
    sent_at: float
    server: _Loop
    spec: Any
    sstate: StubCall
    stub: _Stub
    tracing: bool
    waiters: list[asyncio.Future[Any]]


class _Stub:
    def __init__(self, obj: Any, home: _Loop) -> None:
        self.obj = obj
        self.home = home
        self.conn = Connection.CONNECTED
        self.running = 0


class _Prototype:
    """Client ``a`` calls ``Add`` on an object in server ``b``; ``rules`` adds the rule work."""

    def __init__(self, cpu: int | None, rule_work: bool) -> None:
        self.rule_work = rule_work
        self.a, self.b = _Loop(cpu), _Loop(cpu)
        self.stub = _Stub(latency._Plain(), self.b)
        self.lock = threading.Lock()
        self.ids = itertools.count(1).__next__
        self.causality_ids = itertools.count(1).__next__
        self.outgoing: dict[int, list[_Call]] = {}

    # -- client ------------------------------------------------------------------------------
    async def call(self, *args: Any) -> Any:
        where = WHERE.get()
        a, stub = self.a, self.stub
        if where is None or where[0] is not a:
            raise RuntimeError("wrong apartment")
        call = _Call()
        call.machine = machine = CallMachine()
        machine.step(Input.BEGIN)
        call.id = self.ids()
        call.args = args
        call.stub = stub
        call.client = a
        call.sstate = StubCall()
        unit = where[1]
        stack: list[_Call] = []
        if self.rule_work:
            if not (a.accepting and stub.conn is Connection.CONNECTED and stub.home.accepting):
                raise RuntimeError("disconnected")
            spec = ADD
            bound = args if spec.simple and len(args) == spec.npos else spec.bind(args, {})
            call.args = pack(bound, spec.arguments_label)
            cid = where[2]
            call.causality_id = cid if cid is not None else self.causality_ids()
            call.spec, call.method, call.server = spec, spec.name, stub.home
            call.reply, call.owner, call.caller_thread = None, None, 1
            call.cancellable = False
            call.sent_at = time.monotonic()
            call.tracing = trace.enabled()
            found = self.outgoing.get(1)
            if found is None:
                found = self.outgoing[1] = []
            stack = found
            stack.append(call)
        fut = a.loop.create_future()
        call.waiters = [fut]
        stub.home.post(self.on_request, call)
        w, _actions = a.sched.begin_wait(unit, WaitKind.CALL)
        await fut
        a.sched.wait_ready(w)
        machine.step(Input.FINISH)
        if self.rule_work:
            stack.remove(call)
            if call.tracing:  # (a trace event would be built here)
                pass
        return call.reply[1]

    def on_reply(self, call: _Call, reply: Any) -> None:
        call.machine.step(Input.REPLY)
        call.reply = reply
        for fut in call.waiters:
            resume(fut, True)

    # -- server ------------------------------------------------------------------------------
    def on_request(self, call: _Call) -> None:
        b = self.b
        unit = Unit(UnitKind.CALL, call)
        if not b.sched.start_if_idle(unit):
            raise RuntimeError("the prototype serves one call at a time")
        if self.rule_work:
            with self.lock:
                call.sstate.step(StubInput.DISPATCH)
        if b.idle:
            resume(b.idle.pop(), (call, unit))
        else:
            b.loop.create_task(self.server_task(call, unit))

    async def server_task(self, call: _Call, unit: Unit) -> None:
        b = self.b
        with anyio.CancelScope():
            while True:
                stub = call.stub
                if self.rule_work:
                    WHERE.set((b, unit, call.causality_id, call))
                    stub.running += 1
                    rules.interrupts("interrupt")
                result = await stub.obj.Add(*call.args)
                if self.rule_work:
                    reply: Any = (0, pack(result, ADD.result_label))
                    stub.running -= 1
                    with self.lock:
                        call.sstate.step(StubInput.RETURN)
                else:
                    reply = (0, result)
                call.client.post(self.on_reply, call, reply)
                b.sched.end(unit)
                slot: asyncio.Future[Any] = b.loop.create_future()
                b.idle.append(slot)
                call, unit = await slot

    # -- measuring ---------------------------------------------------------------------------
    def sample(self, n: int) -> list[float]:
        """``n`` calls' times; the loops keep running (``close`` ends them)."""

        async def client() -> list[float]:
            unit = Unit(UnitKind.RUN)
            self.a.sched.start_if_idle(unit)
            WHERE.set((self.a, unit, None))
            try:
                return await latency._sample(lambda: self.call(1, 2), n)
            finally:
                self.a.sched.end(unit)

        return asyncio.run_coroutine_threadsafe(client(), self.a.loop).result()

    def close(self) -> None:
        self.a.stop()
        self.b.stop()


def _prototype_rounds(cpu: int | None, rule_work: bool, n: int
                      ) -> tuple[list[float], list[float]]:
    """A prototype's samples and the two-loop baseline's, in alternating rounds."""
    proto = _Prototype(cpu, rule_work)
    ours, base = latency.Samples(), latency.Samples()
    size = max(20, n // latency.ROUNDS)
    try:
        for i in range(latency.ROUNDS):
            if i % 2:
                base.add_block(latency.baseline_two_loops(size, (cpu, cpu)))
                ours.add_block(proto.sample(size))
            else:
                ours.add_block(proto.sample(size))
                base.add_block(latency.baseline_two_loops(size, (cpu, cpu)))
    finally:
        proto.close()
    return ours, base


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=6000)
    args = ap.parse_args(argv)
    n = args.n
    cpu = sorted(os.sched_getaffinity(0))[0] if hasattr(os, "sched_getaffinity") else None
    rows: dict[str, Callable[[], tuple[list[float], list[float]]]] = {
        "bare shape": lambda: _prototype_rounds(cpu, False, n),
        "shape + rule work": lambda: _prototype_rounds(cpu, True, n),
        "comsim": lambda: asyncio.run(latency.comsim_threaded(
            n, "sta1", "sta2", "sync", baseline=(cpu, cpu), cpu=cpu)),
    }
    report: dict[str, float] = {}
    print(f"one CPU ({cpu}); p50 in us; baseline: two bare asyncio loops, in rounds that "
          "alternate with each row's")
    for label, run in rows.items():
        ours, base = run()
        ratio = latency._ratio(ours, base)
        report[label] = ratio
        print(f"{label:20} {latency._stats(ours)['p50']:8.2f}   baseline "
              f"{latency._stats(base)['p50']:7.2f}   ratio {ratio:5.2f}x")
    return report


if __name__ == "__main__":
    main()
