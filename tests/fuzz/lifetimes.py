"""Identity and lifetimes in the fuzz programs (R7, R9, R10, R34): one object marshalled several
ways, brought into one apartment by every route, released in a random order.

A ``LifeSpec`` is plain data drawn from the program's random stream: the apartment the object
lives in (``owner``: an STA, the MTA or the NA), the apartment it is brought into (``user``,
another one), the marshal data made at the start (NORMAL, TABLESTRONG, TABLEWEAK, a GIT entry)
and a list of steps, each run as its own unit (``Apartment.run``; in the NA by
``rt.nta.run`` entered from no apartment, the MTA or an STA, R5):

- ``("unmarshal", k)``: unmarshal data ``k`` (``GetInterfaceFromGlobal`` for the GIT entry);
- ``("missing", k)``: unmarshal it for an interface the object lacks (R9);
- ``("release", slot)``, ``("qi", slot, iface)``, ``("call", slot)``: on a pointer got before;
- ``("identity", a, b)``: ``a.QueryInterface(IUnknown) is b.QueryInterface(IUnknown)`` (R34),
  both released again;
- ``("remarshal", slot)``: NORMAL data marshalled from the proxy (a strong reference, R7);
- ``("release_data", k, where)``: ``release_marshal_data`` or ``RevokeInterfaceFromGlobal``
  from the user's, the owner's apartment, the MTA or the NA;
- ``("locks",)``: in the owner, the object's own count shows the stub's reference iff the stub
  is connected (R7), once the owner has taken in the releases sent to it before (R1: a stub
  let go from another apartment has its object released in the owner, by a message);
- ``("disconnect",)``: ``CoDisconnectObject`` in the owner (R17).

``LifeModel`` follows R7 and R34 step by step (every step is synchronous, so the order is the
program's whatever the schedule) and says what each step must give: the manager's proxy (the
same Python object for an interface as long as the manager lives, a new one after it reached
0), its count from ``AddRef``/``Release``, and the HRESULT of every failure:
``CO_E_OBJNOTCONNECTED`` for a dead proxy (its manager reached 0) and for consumed NORMAL or
released TABLESTRONG data, ``CO_E_OBJNOTREG`` for weak data once the stub went by release or
once released, ``RPC_E_DISCONNECTED`` for a proxy of released NORMAL data or after
``CoDisconnectObject``, ``E_INVALIDARG`` for a revoked GIT entry, ``E_NOINTERFACE`` for (R9).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import anyio

import comsim
from comsim import hresult as hr

KINDS = ("normal", "strong", "weak", "git")
FLAGS = {"normal": comsim.MSHLFLAGS.NORMAL, "strong": comsim.MSHLFLAGS.TABLESTRONG,
         "weak": comsim.MSHLFLAGS.TABLEWEAK}
#: virtual time in which every message already sent is delivered: a message takes at most 3 ms
#: (``programs._LATENCY``), and the pump delivers every pending one before time moves
IN_FLIGHT = 0.004


class ILife(comsim.Interface):
    async def Get(self) -> int: ...


class ILife2(comsim.Interface):
    async def Two(self) -> int: ...


class IMissing(comsim.Interface):
    async def Nothing(self) -> None: ...


class Life(comsim.CoClass, ILife, ILife2):
    def __init__(self, tag: int) -> None:
        super().__init__()
        self.tag = tag

    async def Get(self) -> int:
        return self.tag

    async def Two(self) -> int:
        return self.tag * 2


IFACES = {"ILife": ILife, "ILife2": ILife2, "IUnknown": comsim.IUnknown}


@dataclass
class LifeSpec:
    op: int
    owner: int  # apartment index (STA, MTA or NA)
    user: int
    kinds: list[str]
    steps: list[tuple[Any, ...]]
    delay: float = 0.0
    #: for each step run in the NA: the apartment whose thread enters it (None: no apartment)
    hosts: list[int | None] = field(default_factory=list)


def generate_life(rng: random.Random, op: int, choices: list[int], na: int,
                  hosts: list[int]) -> LifeSpec:
    """A lifetime scenario over ``choices`` (apartments that never shut down); NA code is
    entered from one of ``hosts`` or from no apartment."""
    owner, user = rng.sample(choices, 2)
    kinds = [rng.choice(KINDS) for _ in range(rng.randint(1, 4))]
    n_data = len(kinds)
    slots = 0
    steps: list[tuple[Any, ...]] = []
    cut = False
    wheres = ["user", "owner", "mta", "na"]
    for _ in range(rng.randint(4, 14)):
        r = rng.random()
        if r < 0.3 or slots == 0:
            k = rng.randrange(n_data)
            if not cut and rng.random() < 0.1:
                steps.append(("missing", k))
            else:
                steps.append(("unmarshal", k))
                slots += 1
        elif r < 0.45:
            steps.append(("release", rng.randrange(slots)))
        elif r < 0.58:
            steps.append(("call", rng.randrange(slots)))
        elif r < 0.66 and not cut:
            steps.append(("qi", rng.randrange(slots), rng.choice(tuple(IFACES))))
            slots += 1
        elif r < 0.73 and not cut:
            steps.append(("identity", rng.randrange(slots), rng.randrange(slots)))
        elif r < 0.78 and not cut:
            steps.append(("remarshal", rng.randrange(slots)))
            n_data += 1
        elif r < 0.9:
            steps.append(("release_data", rng.randrange(n_data), rng.choice(wheres)))
        elif r < 0.96:
            steps.append(("locks",))
        elif not cut:
            steps.append(("disconnect",))
            cut = True
    if rng.random() < 0.7:
        # the end of it all: every pointer released until its count is 0, every data
        # released; then a call on a dead proxy (R34) and the object's count (R7)
        steps.append(("release_all",))
        steps.append(("call", 0))
        for k in range(n_data):
            steps.append(("release_data", k, rng.choice(wheres)))
        steps.append(("locks",))
    host_choices: list[int | None] = [*hosts, None]
    spec = LifeSpec(op, owner, user, kinds, steps, rng.choice((0.0, 0.0, 0.001, 0.005)))
    spec.hosts = [rng.choice(host_choices) for _ in range(len(steps) + 1)]
    return spec


def describe_life(spec: LifeSpec, name: Any) -> list[str]:
    lines = [f"  identity/lifetime op {spec.op}: object in {name(spec.owner)}, used in "
             f"{name(spec.user)}, data {spec.kinds}, after {spec.delay} s"]
    lines.extend(f"    {s}" for s in spec.steps)
    return lines


# =========================================================================== the model
class LifeModel:
    """R7 and R34, for one object and one user apartment."""

    def __init__(self, kinds: list[str]) -> None:
        self.data: list[list[str]] = [[k, "live"] for k in kinds]
        self.connected = True
        self.cut = False  # CoDisconnectObject
        self.gen = 0  # the user apartment's proxy manager: its generation and count
        self.count = 0
        self.strong = sum(k != "weak" for k in kinds)
        self.weak = sum(k == "weak" for k in kinds)

    def _strong_down(self) -> None:
        self.strong -= 1
        if self.connected and self.strong <= 0:
            self.connected = False

    def _weak_down(self) -> None:
        self.weak -= 1
        if self.connected and self.weak <= 0 and self.strong <= 0:
            self.connected = False

    def route(self) -> int:
        """R34: a route into the user apartment: the manager's count + 1 (a new manager,
        holding one strong reference, when there is none)."""
        if self.count == 0:
            self.gen += 1
            self.count = 1
            self.strong += 1
        else:
            self.count += 1
        return self.gen

    def unmarshal(self, k: int) -> tuple[str, Any]:
        """("route", gen) | ("disc", None) | ("hr", code) | ("either", code): what unmarshal
        of data ``k`` gives, the model moved on."""
        kind, state = self.data[k]
        if kind == "git":
            if state == "released":
                return ("hr", hr.E_INVALIDARG)  # R10
            if self.cut:
                return ("hr", hr.CO_E_OBJNOTCONNECTED)  # R17
            return ("route", self.route())
        if kind == "weak" and (state == "released" or not (self.connected or self.cut)):
            if self.cut and state == "released":
                return ("hr_either", (hr.CO_E_OBJNOTREG, hr.CO_E_OBJNOTCONNECTED))
            return ("hr", hr.CO_E_OBJNOTREG)  # R7: released, or the stub went by release
        if self.cut:
            if kind == "normal" and state == "released":
                return ("either", hr.CO_E_OBJNOTCONNECTED)
            return ("hr", hr.CO_E_OBJNOTCONNECTED)  # R17: every outstanding data
        if kind == "normal":
            if state == "consumed":
                return ("hr", hr.CO_E_OBJNOTCONNECTED)  # R6
            if state == "released":
                return ("disc", None)  # R7: a disconnected proxy
            self.data[k][1] = "consumed"
            gen = self.route()
            self.strong -= 1  # moved to the manager (R7)
            return ("route", gen)
        if kind == "strong":
            if state == "released":
                return ("hr", hr.CO_E_OBJNOTCONNECTED)  # R7 (choice)
            return ("route", self.route())
        if state == "released" or not self.connected:
            return ("hr", hr.CO_E_OBJNOTREG)  # R7
        return ("route", self.route())

    def missing(self, k: int) -> int | None:
        """R9: normal live data unmarshalled for a missing interface: E_NOINTERFACE, the data
        consumed. None: not a case the step covers (then it is skipped)."""
        kind, state = self.data[k]
        if kind != "normal" or state != "live" or self.cut:
            return None
        self.data[k][1] = "consumed"
        self._strong_down()
        return hr.E_NOINTERFACE

    def release(self, gen: int) -> int:
        if gen != self.gen or self.count == 0:
            return 0  # R34 (choice): a dead proxy's Release gives 0
        self.count -= 1
        if self.count == 0:
            self._strong_down()
        return self.count

    def live(self, gen: int) -> bool:
        return gen == self.gen and self.count > 0

    def release_data(self, k: int) -> int | None:
        """The HRESULT the release must raise, or None."""
        kind, state = self.data[k]
        if kind == "git":
            if state == "released":
                return hr.E_INVALIDARG  # R10: revoke after revoke
            self.data[k][1] = "released"
            self._strong_down()
            return None
        if state != "live":
            return None  # R7: releasing twice or releasing consumed data does nothing
        self.data[k][1] = "released"
        if kind == "weak":
            self._weak_down()
        else:
            self._strong_down()
        return None

    def disconnect(self) -> None:
        """R17; on a stub that already went by release it changes nothing."""
        if self.connected:
            self.cut = True
        self.connected = False


# =========================================================================== the interpreter
class LifeRun:
    """Runs one ``LifeSpec`` from no apartment, step by step, checking each against the
    model; ``violation(text)`` records a broken invariant, ``log`` the observed results."""

    def __init__(self, rt: comsim.Runtime, spec: LifeSpec, apts: list[Any], na: int,
                 mta: int, name: Any, violation: Any, filtered: bool) -> None:
        self.rt = rt
        self.spec = spec
        self.apts = apts
        self.na = na
        self.mta = mta
        self.name = name
        self.bad = violation
        self.filtered = filtered  # the owner's message filter may reject calls (R16)
        self.model = LifeModel(spec.kinds)
        self.kinds = list(spec.kinds)  # grows with data marshalled from proxies
        self.obj: Any = None
        self.streams: list[Any] = []  # MarshalStream, or a GIT cookie
        #: (pointer, "mgr"|"disc", gen; a released "disc" one's gen is "released");
        #: self.ifaces: the interface of each slot
        self.slots: list[tuple[Any, str, Any] | None] = []
        self.ifaces: list[str] = []
        self.known: dict[tuple[int, str], Any] = {}  # (gen, iface) -> the manager's proxy
        self.log: list[Any] = []
        self.step_no = 0

    def _where(self, what: str) -> str:
        return f"identity op {self.spec.op} step {self.step_no} ({what})"

    async def _in(self, apt: int, fn: Any, *args: Any) -> Any:
        if apt != self.na:
            return await self.apts[apt].run(fn, *args)
        host = self.spec.hosts[min(self.step_no, len(self.spec.hosts) - 1)]
        if host is None:
            return await self.rt.nta.run(fn, *args)  # R5: from no apartment
        return await self.apts[host].run(self.rt.nta.run, fn, *args)

    async def run(self) -> None:
        spec = self.spec
        self.obj, self.streams = await self._in(spec.owner, self._export)
        for self.step_no, step in enumerate(spec.steps, 1):
            await self._step(step)

    async def _export(self) -> tuple[Any, list[Any]]:
        obj = Life(self.spec.op)
        out: list[Any] = []
        for kind in self.spec.kinds:
            if kind == "git":
                out.append(self.rt.git.RegisterInterfaceInGlobal(obj, ILife))
            else:
                out.append(comsim.marshal_interface(obj, ILife, flags=FLAGS[kind]))
        return obj, out

    async def _step(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        spec = self.spec
        if kind in ("unmarshal", "missing", "release", "qi", "call", "identity", "remarshal",
                    "release_all"):
            await self._in(spec.user, getattr(self, "_" + kind), *step[1:])
        elif kind == "release_data":
            k, where = step[1], step[2]
            apt = {"user": spec.user, "owner": spec.owner, "mta": self.mta, "na": self.na}[where]
            await self._in(apt, self._release_data, k)
        elif kind == "locks":
            await self._taken_in(spec.owner)
            await self._in(spec.owner, self._locks)
        elif kind == "disconnect":
            await self._in(spec.owner, self._disconnect)

    async def _taken_in(self, apt: int) -> None:
        """R1 R7: a stub let go from another apartment has its object released in the owner,
        by a message: every message sent to the owner before is taken in here (threaded: a
        round trip through its FIFO loop; deterministic: and virtual time for every message on
        its way). The NA has no loop: its objects are released at once (R5)."""
        if apt == self.na:
            return
        await self.apts[apt].run(_noop)
        if self.rt.deterministic:
            await anyio.sleep(IN_FLIGHT)

    # ------------------------------------------------------------- the steps
    def _add_slot(self, p: Any, expect: tuple[str, Any], iface: str) -> None:
        kind, gen = expect
        if kind == "disc":
            for other in self.slots:
                if other is not None and other[0] is p:
                    self.bad(self._where("unmarshal") + ": a disconnected proxy is shared "
                             "(R34: R7's disconnected proxies are never shared)")
            self.slots.append((p, "disc", None))
            self.ifaces.append(iface)
            return
        same = self.known.get((gen, iface))
        if same is None:
            for (g, i), q in self.known.items():
                if q is p:
                    self.bad(self._where("route") + f": got the proxy of manager {g}/{i} for "
                             f"manager {gen}/{iface} (R34: a new manager after 0)")
            self.known[(gen, iface)] = p
        elif same is not p:
            self.bad(self._where("route") + f": a second proxy for {iface} while the "
                     "apartment's manager lives (R34: one proxy per interface)")
        self.slots.append((p, "mgr", gen))
        self.ifaces.append(iface)

    async def _unmarshal(self, k: int) -> None:
        stream = self.streams[k]
        if stream is None:  # data a failed marshal never made
            self._none()
            return
        expect = self.model.unmarshal(k)
        try:
            if isinstance(stream, int):
                p = self.rt.git.GetInterfaceFromGlobal(stream, ILife)
            else:
                p = comsim.unmarshal_interface(stream)
        except comsim.COMError as exc:
            self.log.append(("unmarshal", k, exc.hresult))
            self._none()
            if expect[0] in ("hr", "either") and expect[1] == exc.hresult:
                return
            if expect[0] == "hr_either" and exc.hresult in expect[1]:
                return
            self.bad(self._where(f"unmarshal {self.kinds[k]}") + f": "
                     f"{hr.name(exc.hresult)}, R7/R10/R34 say {_fmt_expect(expect)}")
            return
        self.log.append(("unmarshal", k, "ok"))
        if expect[0] == "either":
            expect = ("disc", None)
        if expect[0] in ("hr", "hr_either"):
            self.bad(self._where(f"unmarshal {self.kinds[k]}") + f": succeeded, "
                     f"R7/R10/R34 say {_fmt_expect(expect)}")
            self._none()
            return
        if not isinstance(p, comsim.Proxy):
            self.bad(self._where("unmarshal") + f": gave {type(p).__name__}, not a proxy "
                     "(R8: only at home the object itself)")
        self._add_slot(p, expect, "ILife")

    async def _missing(self, k: int) -> None:
        if self.streams[k] is None:
            return
        expect = self.model.missing(k)
        if expect is None:
            return
        try:
            comsim.unmarshal_interface(self.streams[k], IMissing)
        except comsim.COMError as exc:
            self.log.append(("missing", k, exc.hresult))
            if exc.hresult != expect:
                self.bad(self._where("unmarshal for a missing interface") +
                         f": {hr.name(exc.hresult)}, not E_NOINTERFACE (R9)")
            return
        self.bad(self._where("unmarshal for a missing interface") + ": succeeded (R9)")

    def _none(self) -> None:
        self.slots.append(None)
        self.ifaces.append("")

    def _slot(self, i: int) -> tuple[Any, str, Any] | None:
        return self.slots[i] if i < len(self.slots) else None

    async def _release(self, i: int) -> None:
        slot = self._slot(i)
        if slot is None:
            return
        p, kind, gen = slot
        want = 0 if kind == "disc" else self.model.release(gen)
        got = p.Release()
        if kind == "disc":  # its own count of 1 reached 0: it is dead too (R34)
            self.slots[i] = (p, kind, "released")
        self.log.append(("release", i, got))
        if got != want:
            self.bad(self._where(f"Release of {kind} pointer {i}") + f": gave {got}, the "
                     f"manager's count is {want} (R34)")

    async def _release_all(self) -> None:
        for i, slot in enumerate(self.slots):
            if slot is not None and slot[1] == "mgr":
                while self.model.live(slot[2]):
                    await self._release(i)
        for i, slot in enumerate(self.slots):
            if slot is not None and slot[1] == "disc":
                await self._release(i)

    async def _qi(self, i: int, iface: str) -> None:
        slot = self._slot(i)
        if slot is None or slot[1] == "disc":
            self._none()
            return
        p, _, gen = slot
        live = self.model.live(gen)
        if live and self.model.cut:
            self._none()  # not said by the rules: skipped
            return
        try:
            q = p.QueryInterface(IFACES[iface])
        except comsim.COMError as exc:
            self.log.append(("qi", i, exc.hresult))
            self._none()
            if live or exc.hresult != hr.CO_E_OBJNOTCONNECTED:
                self.bad(self._where(f"QueryInterface({iface}) on pointer {i}") + f": "
                         f"{hr.name(exc.hresult)}" + (", its manager lives (R34)" if live else
                                                      ", not CO_E_OBJNOTCONNECTED (R34)"))
            return
        self.log.append(("qi", i, "ok"))
        if not live:
            self.bad(self._where(f"QueryInterface({iface}) on pointer {i}") + ": succeeded on "
                     "a proxy whose manager reached 0 (R34: CO_E_OBJNOTCONNECTED)")
            self._none()
            return
        self._add_slot(q, ("route", self.model.route()), iface)

    async def _identity(self, i: int, j: int) -> None:
        a, b = self._slot(i), self._slot(j)
        if a is None or b is None or a[1] == "disc" or b[1] == "disc" or self.model.cut:
            return
        if not (self.model.live(a[2]) and self.model.live(b[2])):
            return
        ua = a[0].QueryInterface(comsim.IUnknown)
        ub = b[0].QueryInterface(comsim.IUnknown)
        self.model.route()
        self.model.route()
        self.log.append(("identity", i, j, ua is ub))
        if ua is not ub:
            self.bad(self._where(f"identity of pointers {i}, {j}") + ": "
                     "a.QueryInterface(IUnknown) is not b.QueryInterface(IUnknown) for one "
                     "object (R34)")
        known = self.known.setdefault((a[2], "IUnknown"), ua)
        if known is not ua:
            self.bad(self._where("identity") + ": a second IUnknown proxy while the manager "
                     "lives (R34)")
        for u in (ua, ub):
            want = self.model.release(a[2])
            got = u.Release()
            if got != want:
                self.bad(self._where("Release of an IUnknown") + f": gave {got}, the "
                         f"manager's count is {want} (R34)")

    async def _call(self, i: int) -> None:
        slot = self._slot(i)
        if slot is None:
            return
        p, kind, gen = slot
        if kind == "disc":
            # R7; once released, R34's dead proxy: R12's checks at the proxy come first
            want = hr.CO_E_OBJNOTCONNECTED if gen == "released" else hr.RPC_E_DISCONNECTED
        elif not self.model.live(gen):
            want = hr.CO_E_OBJNOTCONNECTED  # R34
        elif self.model.cut:
            want = hr.RPC_E_DISCONNECTED  # R17
        else:
            want = 0
        two = self.ifaces[i] == "ILife2"
        try:
            value = await (p.Two() if two else p.Get())
        except comsim.COMError as exc:
            self.log.append(("call", i, exc.hresult))
            if exc.hresult == want:
                return
            if want == 0 and self.filtered and exc.hresult == hr.RPC_E_CALL_REJECTED:
                return  # R16
            self.bad(self._where(f"call on {kind} pointer {i}") + f": {hr.name(exc.hresult)}"
                     + (f", R7/R17/R34 say {hr.name(want)}" if want else
                        ", the manager lives and the stub is connected"))
            return
        self.log.append(("call", i, value))
        if want:
            self.bad(self._where(f"call on {kind} pointer {i}") + f": returned {value!r}, "
                     f"R7/R17/R34 say {hr.name(want)}")
        elif value != self.spec.op * (2 if two else 1):
            self.bad(self._where("call") + f": returned {value!r} (R11)")

    async def _remarshal(self, i: int) -> None:
        slot = self._slot(i)
        if slot is None or slot[1] == "disc" or self.model.cut:
            self.streams.append(None)
            self.model.data.append(["normal", "consumed"])
            self.kinds.append("normal")
            return
        p, _, gen = slot
        live = self.model.live(gen)
        try:
            s = comsim.marshal_interface(p, ILife)
        except comsim.COMError as exc:
            self.log.append(("remarshal", i, exc.hresult))
            self.streams.append(None)
            self.model.data.append(["normal", "consumed"])
            self.kinds.append("normal")
            if live or exc.hresult != hr.CO_E_OBJNOTCONNECTED:
                self.bad(self._where(f"marshal from pointer {i}") + f": "
                         f"{hr.name(exc.hresult)}" + (", its manager lives (R7, R34)" if live
                                                      else ", not CO_E_OBJNOTCONNECTED (R34)"))
            return
        self.log.append(("remarshal", i, "ok"))
        self.streams.append(s)
        self.kinds.append("normal")
        if live:
            self.model.data.append(["normal", "live"])
            self.model.strong += 1  # R7: the data holds the stub
        else:
            self.model.data.append(["normal", "consumed"])
            self.bad(self._where(f"marshal from pointer {i}") + ": succeeded on a proxy whose "
                     "manager reached 0 (R34: CO_E_OBJNOTCONNECTED)")

    async def _release_data(self, k: int) -> None:
        stream = self.streams[k]
        if stream is None:
            return
        want = self.model.release_data(k)
        try:
            if isinstance(stream, int):
                self.rt.git.RevokeInterfaceFromGlobal(stream)
            else:
                comsim.release_marshal_data(stream)
        except comsim.COMError as exc:
            self.log.append(("release_data", k, exc.hresult))
            if exc.hresult != want:
                self.bad(self._where(f"release of {self.kinds[k]} data {k}") + ": "
                         f"{hr.name(exc.hresult)}" + (f", not {hr.name(want)}" if want else "")
                         + " (R7, R10)")
            return
        self.log.append(("release_data", k, "ok"))
        if want is not None:
            self.bad(self._where(f"release of {self.kinds[k]} data {k}") + ": "
                     f"succeeded, R10 says {hr.name(want)}")

    async def _locks(self) -> None:
        n = self.obj.AddRef()
        self.obj.Release()
        held = n - 2  # besides the creator's reference and this AddRef's: the stub's
        want = 1 if self.model.connected else 0
        self.log.append(("locks", held))
        if held != want:
            self.bad(self._where("the object's count") + f": {held} reference(s) besides its "
                     f"creator's; the stub is {'connected' if want else 'gone'} (R7)")

    async def _disconnect(self) -> None:
        self.model.disconnect()
        comsim.CoDisconnectObject(self.obj)
        self.log.append(("disconnect",))


async def _noop() -> None:
    return None


def _fmt_expect(expect: tuple[str, Any]) -> str:
    if expect[0] == "route":
        return f"the manager's proxy (manager {expect[1]})"
    if expect[0] == "disc":
        return "a disconnected proxy"
    if expect[0] == "either":
        return f"{hr.name(expect[1])} or a disconnected proxy"
    if expect[0] == "hr_either":
        return " or ".join(hr.name(h) for h in expect[1])
    return hr.name(expect[1])
