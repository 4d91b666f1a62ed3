"""Values that fail to cross (R11, R12, R7), in scenarios of their own.

A ``ValueSpec`` makes one synchronous call to ``Sink.Take(value, mode, tag)``, an object in the
MTA or an STA of its own, from code in an STA of its own or the MTA. The value is a list of
object references -- objects of the client's apartment (``mine``: at the server they become
proxies) and proxies the client holds to objects of the server's apartment (``theirs``: at the
server they arrive home, R8) -- and, by ``kind``:

- ``"refuse_arg"``: an item whose ``__reduce__`` raises ``exc`` (an Exception, or a
  BaseException: a user's own, SystemExit, GeneratorExit, CancelledError): the call fails with
  ``RPC_X_BAD_STUB_DATA`` before anything is sent; the server never runs (R11);
- ``"spoil_arg"``: an item that pickles but whose reconstructor raises ``exc`` on the server,
  after the references before it were brought in: ``RPC_X_BAD_STUB_DATA``, the method never
  runs, and what was brought in is let go (R11, R7);
- ``"refuse_result"`` / ``"spoil_result"``: the server returns new objects of its own and such
  an item: ``RPC_X_BAD_STUB_DATA`` (the server's work is done, R11), and the new objects' stubs
  go (nothing leaks, R7);
- ``"wrong_apt"``: the value holds a proxy bound to another apartment (handed over by
  reference through ``Apartment.run``): ``RPC_E_WRONG_THREAD``, nothing sent (R12, R11); the
  proxy still works where it is bound;
- ``"plain"``: the value crosses; the method sees proxies (``mine``) and its own objects
  (``theirs``, R8) and returns their count.

The method releases what its arguments brought in (R7: in comsim a proxy or an object arriving
home in a value holds a reference). Checked: the outcome, whether the server ran, no exception
but ``COMError`` reaching the caller (R11: every user failure is a COM outcome), and at the
end, the client's proxies released, every object involved back to its creator's one reference
(R7: nothing leaks).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import anyio

import comsim
from comsim import hresult as hr

KINDS = ("refuse_arg", "spoil_arg", "refuse_result", "spoil_result", "wrong_apt", "plain")
EXCS = ("ValueError", "Odd", "SystemExit", "GeneratorExit", "CancelledError")
SETTLE = {"deterministic": 5.0, "threaded": 2.0}


class Odd(BaseException):
    """A BaseException of the user's own."""


RAISES: dict[str, type[BaseException]] = {
    "ValueError": ValueError, "Odd": Odd, "SystemExit": SystemExit,
    "GeneratorExit": GeneratorExit, "CancelledError": asyncio.CancelledError}


def _spoil(name: str) -> Any:
    raise RAISES[name](f"{name} from the reconstructor")


class Spoiled:
    """Pickles, but its reconstructor raises ``name`` where it arrives."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> Any:
        return (_spoil, (self.name,))


class Refused:
    """Its ``__reduce__`` raises ``name``: it does not pickle."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> Any:
        raise RAISES[self.name](f"{self.name} from __reduce__")


@dataclass
class ValueSpec:
    op: int
    kind: str  # one of KINDS
    exc: str  # one of EXCS
    client: str  # "sta" | "mta"
    server: str  # "sta" | "mta"
    mine: int  # objects of the client's apartment in the value
    theirs: int  # proxies to objects of the server's apartment in the value
    gifts: int  # *_result: new objects the server returns before the bad item

    def describe(self) -> list[str]:
        opts = [f"client={self.client}", f"server={self.server}", f"mine={self.mine}",
                f"theirs={self.theirs}"]
        if self.kind.startswith(("refuse", "spoil")):
            opts.append(f"raises {self.exc}")
        if self.kind.endswith("result"):
            opts.append(f"gifts={self.gifts}")
        return [f"  value op {self.op}: {self.kind} " + " ".join(opts)]

    async def run(self, rt: comsim.Runtime, ctx: Any, det: bool) -> None:
        await ValueRun(rt, self, ctx, det).run()


def generate_value(rng: random.Random, op: int) -> ValueSpec:
    client = rng.choice(("sta", "mta"))
    server = "sta" if client == "mta" else rng.choice(("sta", "mta"))
    spec = ValueSpec(op, rng.choice(KINDS), rng.choice(EXCS), client, server,
                     rng.choice((0, 1, 2)), rng.choice((0, 1, 2)), rng.choice((0, 1, 2)))
    if spec.kind == "wrong_apt":  # proxies only: the client's own objects stay at home
        spec.mine, spec.theirs = 0, max(spec.theirs, 1)
    return spec


class IThing(comsim.Interface):
    async def Tag(self) -> int: ...


class Thing(comsim.CoClass, IThing):
    def __init__(self, tag: int) -> None:
        super().__init__()
        self.tag = tag

    async def Tag(self) -> int:
        return self.tag


class ISink(comsim.Interface):
    async def Take(self, value: Any, mode: str, tag: int) -> Any: ...


class Sink(comsim.CoClass, ISink):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.made: list[Thing] = []

    async def Take(self, value: Any, mode: str, tag: int) -> Any:
        self.calls += 1
        proxies = sum(isinstance(v, comsim.Proxy) for v in value)
        homes = sum(isinstance(v, Thing) for v in value)
        for v in value:  # what the arguments brought in is the method's to let go (R7)
            v.Release()
        if mode == "plain":
            return (proxies, homes)
        made = [Thing(tag * 10 + i) for i in range(int(mode.split(":")[1]))]
        self.made.extend(made)
        bad = Refused(mode.split(":")[2]) if mode.startswith("refuse") else Spoiled(
            mode.split(":")[2])
        return [*made, bad]


async def _held(obj: Any) -> int:
    n = int(obj.AddRef())
    obj.Release()
    return n - 1


class ValueRun:
    def __init__(self, rt: comsim.Runtime, spec: ValueSpec, ctx: Any, det: bool) -> None:
        self.rt, self.spec, self.ctx, self.det = rt, spec, ctx, det

    def _bad(self, text: str) -> None:
        s = self.spec
        self.ctx.violation(f"value op {s.op} ({s.kind}, {s.exc}, client {s.client}, server "
                           f"{s.server}): {text}")

    async def run(self) -> None:
        spec, rt, ctx = self.spec, self.rt, self.ctx
        op = spec.op
        ctx.started.add(op)
        own: list[Any] = []
        if spec.server == "sta":
            own.append(await rt.create_sta(f"vs{op}"))
        srv = own[0] if own else rt.mta
        if spec.client == "sta":
            own.append(await rt.create_sta(f"vc{op}"))
        cli = own[-1] if spec.client == "sta" else rt.mta
        other = await rt.create_sta(f"vo{op}") if spec.kind == "wrong_apt" else None

        async def make() -> tuple[Sink, Any, list[Thing], list[Any]]:
            sink = Sink()
            things = [Thing(op * 100 + i) for i in range(spec.theirs)]
            return (sink, comsim.marshal_interface(sink, ISink,
                                                   flags=comsim.MSHLFLAGS.TABLESTRONG), things,
                    [comsim.marshal_interface(t, IThing) for t in things])

        sink, stream, theirs, streams = await srv.run(make)
        mine: list[Thing] = []
        try:
            await cli.run(self.client, stream, streams, mine, other)
        except Exception as exc:
            self._bad(f"the client code raised {exc!r}")
        await self._settle(srv, cli, sink, theirs, mine)
        if other is not None:
            await other.shutdown()
        for a in own:
            await a.shutdown()
        ctx.record(op, ("done",))

    async def client(self, stream: Any, streams: list[Any], mine: list[Thing],
                     other: Any) -> None:
        spec = self.spec
        sink = comsim.unmarshal_interface(stream)
        proxies = [comsim.unmarshal_interface(s) for s in streams]
        mine.extend(Thing(spec.op * 1000 + i) for i in range(spec.mine))
        value: list[Any] = [*mine, *proxies]
        mode = "plain"
        if spec.kind == "refuse_arg":
            value.append(Refused(spec.exc))
        elif spec.kind == "spoil_arg":
            value.append(Spoiled(spec.exc))
        elif spec.kind.endswith("result"):
            mode = f"{spec.kind.split('_')[0]}:{spec.gifts}:{spec.exc}"
        try:
            if spec.kind == "wrong_apt":
                out = await other.run(self._from_other, stream, value)
                if proxies:
                    tag = await proxies[0].Tag()  # still works where it is bound (R12)
                    if tag != spec.op * 100:
                        self._bad(f"the proxy's call gave {tag}")
            else:
                out = await _outcome(sink.Take(value, mode, spec.op))
        finally:
            for p in proxies:
                p.Release()
            sink.Release()
        self._check(out)

    async def _from_other(self, stream: Any, value: list[Any]) -> tuple[Any, ...]:
        """In another apartment: a sink proxy of its own, the value's proxies bound to the
        client's apartment (R12)."""
        sink = comsim.unmarshal_interface(stream)
        try:
            return await _outcome(sink.Take(value, "plain", self.spec.op))
        finally:
            sink.Release()

    def _check(self, out: tuple[Any, ...]) -> None:
        spec = self.spec
        bad_data = ("hr", hr.RPC_X_BAD_STUB_DATA)
        if spec.kind in ("refuse_arg", "spoil_arg", "refuse_result", "spoil_result"):
            if out != bad_data:
                self._bad(f"gave {out}, not RPC_X_BAD_STUB_DATA (R11)")
        elif spec.kind == "plain":
            if out != ("value", (spec.mine, spec.theirs)):
                self._bad(f"gave {out}; the server sees {spec.mine} proxies and "
                          f"{spec.theirs} of its own objects (R11, R8)")
        elif spec.kind == "wrong_apt":
            want = ("hr", hr.RPC_E_WRONG_THREAD)
            if out != want:
                self._bad(f"gave {out}, not {want} (R12)")

    async def _settle(self, srv: Any, cli: Any, sink: Sink, theirs: list[Thing],
                      mine: list[Thing]) -> None:
        spec = self.spec
        ran = sink.calls
        want_ran = 1 if spec.kind in ("refuse_result", "spoil_result", "plain") else 0
        if ran != want_ran:
            self._bad(f"the server method ran {ran} times, expected {want_ran} (R11: a value "
                      "that fails on the caller's side or in unpacking sends or runs nothing)")
        end = anyio.current_time() + SETTLE["deterministic" if self.det else "threaded"]
        while True:
            left = []
            # each back to its creator's one reference: its stub has gone
            for what, apt, things in (("theirs", srv, theirs), ("mine", cli, mine),
                                      ("gift", srv, sink.made)):
                for t in things:
                    n = await apt.run(_held, t)
                    if n != 1:
                        left.append((what, t.tag, n))
            if not left:
                return
            if anyio.current_time() >= end:
                self._bad(f"references left after the call (what, tag, count): {left} "
                          "(R7: a value that failed to cross leaks nothing)")
                return
            await anyio.sleep(0.002)


async def _outcome(aw: Any) -> tuple[Any, ...]:
    try:
        v = await aw
    except comsim.COMError as exc:
        return ("hr", exc.hresult)
    except BaseException as exc:  # nothing but a COMError may reach the caller (R11)
        if isinstance(exc, asyncio.CancelledError) and asyncio.current_task().cancelling():
            raise
        return ("exc", repr(exc))
    return ("value", tuple(v) if isinstance(v, list) else v)
