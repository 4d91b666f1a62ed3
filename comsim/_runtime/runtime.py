"""``Runtime``: one simulated process; its apartments, ids, fault injection, and the transport
that moves its messages (``transport``: threaded or deterministic).

This module is also the composition root: it binds the layers that message each other
(``hooks``).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from .._core import hresult as hr
from .._core import rules
from .._core.check import BadArgumentType, BadArgumentValue, check_name, check_seconds
from .._core.constants import ApartmentType
from .._core.hresult import COMError
from .._core.rules import CancelCounter
from .._core.text import safe_repr
from . import cancel, lifetime, server
from .apartment import Apartment
from .context import LIVE_RUNTIMES, OUTER_RUNTIME
from .deterministic import DeterministicTransport
from .faults import Fault, at_delay, checked_fault, fault_for
from .hooks import HOOKS
from .neutral import NeutralApartment
from .objref import GlobalInterfaceTable
from .schedule import ReplayPolicy, Schedule
from .threaded import ThreadedTransport
from .transport import Transport
from .vtloop import VirtualTimeLoop

# the composition root: the layers that message each other, bound once (``hooks``)
HOOKS.on_request = server.on_request
HOOKS.on_cancel = server.on_cancel
HOOKS.dispatch = server.dispatch
HOOKS.answer = server.reply_now
HOOKS.cancel_outgoing = cancel.cancel_outgoing
HOOKS.stub_goes = lifetime.carry_out


#: the deterministic runtime's random source until it is entered (``Runtime.__aenter__``)
_UNSEEDED = random.Random(0)

#: the host STA's name (R33); it and the NA's are reserved (``create_sta``)
HOST_STA = "HostSTA"
RESERVED_NAMES = frozenset({"NA", HOST_STA, "MTA"})


def _check_options(deterministic: object, seed: object, cpu: object) -> None:
    """``Runtime``'s arguments, checked where they enter (TypeError / ValueError)."""
    if not isinstance(deterministic, bool):
        raise BadArgumentType(f"Runtime(deterministic=...) takes a bool, not "
                              f"{safe_repr(deterministic)}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadArgumentType(f"Runtime(seed=...) takes an int or None, not {safe_repr(seed)}")
    if seed is not None and not deterministic:
        raise BadArgumentValue(f"Runtime(seed={seed}) needs deterministic=True: only the "
                               "deterministic runtime has a seeded order (the threaded "
                               "runtime's is the OS's)")
    if cpu is None:
        return
    if isinstance(cpu, bool) or not isinstance(cpu, int):
        raise BadArgumentType(f"Runtime(cpu=...) takes a CPU number (int) or None, not "
                              f"{safe_repr(cpu)}")
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if cpu < 0 or (allowed is not None and cpu not in allowed):
        raise BadArgumentValue(f"Runtime(cpu={cpu}): this process may run on CPUs "
                         f"{sorted(allowed) if allowed is not None else '>= 0'} only")


class Runtime:
    """One simulated process: its STAs, its MTA, its Global Interface Table.

    ``async with comsim.Runtime() as rt:`` starts the runtime (its MTA comes on first use of
    ``rt.mta``); leaving the block shuts every apartment down and joins their threads (R18).
    ``Runtime(cpu=0)`` keeps every apartment thread on CPU 0 (Linux; ignored elsewhere): lower
    latency, see the README's benchmarks.
    ``Runtime(deterministic=True, seed=N)`` runs every apartment on the caller's loop, which
    must be a ``comsim.testing.VirtualTimeLoop`` (``comsim.testing.run``); the seed picks the
    order of message delivery (none: 0). ``Runtime(deterministic=True, schedule=sched)``
    replays a recorded ``Schedule`` exactly (its seed too, unless ``seed`` is given);
    ``rt.schedule`` is the schedule of the run so far.

    Raises:
        RuntimeError: a deterministic runtime entered on any other loop.
        TypeError, ValueError (``COMError(E_INVALIDARG)`` too): bad options; a ``seed`` or a
            ``schedule`` without ``deterministic=True``; a ``cpu`` the process may not use.
    """

    def __init__(self, *, deterministic: bool = False, seed: int | None = None,
                 cpu: int | None = None, schedule: Schedule | None = None) -> None:
        _check_options(deterministic, seed, cpu)
        if schedule is not None:
            if not isinstance(schedule, Schedule):
                raise BadArgumentType(f"Runtime(schedule=...) takes a comsim.testing.Schedule, "
                                      f"not {safe_repr(schedule)}")
            if not deterministic:
                raise BadArgumentValue("Runtime(schedule=...) needs deterministic=True")
            if seed is None:
                seed = schedule.seed
        self.deterministic = deterministic
        # same program, same run: never a seed from the OS's randomness
        self.seed = 0 if deterministic and seed is None else seed
        self._replay = schedule
        #: threaded runtime, Linux: run every apartment thread on this one CPU. Python runs one
        #: thread at a time anyway (the GIL), and a hand-off between threads on one core avoids
        #: the cross-core wake-up, which dominates call latency on many machines.
        self.cpu = cpu
        self._lock = threading.Lock()
        #: moves every message (``transport``); the threaded one until a deterministic
        #: runtime is entered on its virtual-time loop
        self._transport: Transport = ThreadedTransport(cpu)
        self._closing = False
        self._entered = False
        self._apartments: dict[str, Apartment] = {}
        self._sta_count = 0  # the STAs among them
        #: new ids, and the clock (the loop's virtual time on the deterministic runtime)
        self._new_call_id: Callable[[], int] = itertools.count(1).__next__
        self._new_causality_id: Callable[[], int] = itertools.count(1).__next__
        self._new_thread_id: Callable[[], int] = itertools.count(1).__next__
        self._now: Callable[[], float] = time.monotonic
        self._cookies = itertools.count(1)
        self._stub_ids = itertools.count(1)
        self._outgoing: dict[int, list[Any]] = {}  # thread id -> pending sync calls (R31)
        self._cancel_counts = CancelCounter()
        self._host_loop: asyncio.AbstractEventLoop | None = None
        self._host_thread: int | None = None  # the OS thread that entered it (``trace``)
        self._token: contextvars.Token[Runtime | None] | None = None
        self._t0 = 0.0
        #: the MTA, made on first use (``mta``), as COM makes it when a first thread enters it;
        #: once the runtime's exit has passed it (``__aexit__``), none is made any more
        self._mta: Apartment | None = None
        self._mta_gone = False
        self._started = False  # entered, and ready for apartments
        self._nta: NeutralApartment | None = None  # made on first use (R5)
        self._host_lock = threading.Lock()  # at most one host STA (R33)
        self._faults: list[Fault] = []
        self._background: list[asyncio.Task[Any]] = []
        #: the seeded choices of fault injection; the deterministic runtime's is its
        #: transport's, given on entering (made here, a seeding each, only for the threaded one)
        self._rng = _UNSEEDED if deterministic else random.Random(seed)
        self.git = GlobalInterfaceTable(self._cookies)

    # ---------------------------------------------------------------- context manager
    async def __aenter__(self) -> Runtime:
        if self._entered:
            raise RuntimeError("a Runtime can be entered once")
        self._entered = True
        loop = asyncio.get_running_loop()
        self._host_loop = loop
        self._host_thread = threading.get_ident()
        if self.deterministic:
            if not isinstance(loop, VirtualTimeLoop):
                raise RuntimeError(
                    "Runtime(deterministic=True) needs comsim's virtual-time loop: run the "
                    "program with comsim.testing.run(main)"
                )
            det = DeterministicTransport(loop, self.seed)
            if self._replay is not None:
                det.policy = ReplayPolicy(self._replay.decisions)
            self._transport = det
            self._rng = det.rng
            self._now = det.now
        self._t0 = self._now()
        self._started = True
        self._token = OUTER_RUNTIME.set(self)
        LIVE_RUNTIMES.append(self)
        return self

    async def aclose(self) -> None:
        """Shut every apartment down (STAs newest first, then the MTA) and join threads."""
        await self.__aexit__()

    async def __aexit__(self, *exc: object) -> None:
        """``aclose`` (its body here: one coroutine fewer under ``async with``)."""
        if self._closing:
            return
        self._closing = True
        try:
            for apt in reversed(list(self._apartments.values())):
                if apt.type is not ApartmentType.MTA:
                    await apt._shutdown()
            if self._nta is not None:
                self._nta._end()
            with self._host_lock:
                self._mta_gone = True
            if self._mta is not None:
                await self._mta._shutdown()
            await self._transport.settled()  # the ends other tasks wait for (R18)
        finally:
            if self in LIVE_RUNTIMES:
                LIVE_RUNTIMES.remove(self)
            if self._token is not None:
                try:
                    OUTER_RUNTIME.reset(self._token)
                except ValueError:  # exited in another context
                    OUTER_RUNTIME.set(None)
                self._token = None

    def _use_policy(self, policy: Any) -> None:
        """Exploration: ``policy`` (``schedule.Policy``) decides the deterministic pump's
        deliveries from now on; one with a ``bind`` method is given the transport."""
        transport: Any = self._transport
        transport.policy = policy
        bind = getattr(policy, "bind", None)
        if bind is not None:
            bind(transport)

    @property
    def schedule(self) -> Schedule | None:
        """The deterministic pump's decisions so far, as a ``Schedule`` that replays this run
        (``Runtime(deterministic=True, schedule=...)``); None on the threaded runtime."""
        decisions = getattr(self._transport, "decisions", None)
        return None if decisions is None else Schedule(decisions, self.seed)

    # ---------------------------------------------------------------- apartments
    @property
    def mta(self) -> Apartment:
        """The runtime's one MTA (R3), made on first use (as COM makes the MTA when a first
        thread enters it); it shuts down only with the runtime.

        Raises:
            RuntimeError: the runtime has not been entered, or has ended without an MTA.
        """
        mta = self._mta
        if mta is None:
            self._check_started()
            with self._host_lock:
                mta = self._mta
                if mta is None:
                    if self._mta_gone:
                        raise RuntimeError("the runtime has ended; it had no MTA, and makes "
                                           "none any more")
                    mta = self._mta = self._create_now("MTA", ApartmentType.MTA)
        return mta

    @property
    def nta(self) -> NeutralApartment:
        """The runtime's one neutral apartment (R5), made on first use; named ``NA``, no thread
        and no loop of its own, it ends with the runtime.

        Raises:
            RuntimeError: the runtime has not been entered, or has ended without an NA.
        """
        nta = self._nta
        if nta is None:
            self._check_started()
            with self._host_lock:
                nta = self._nta
                if nta is None:
                    if self._mta_gone:
                        raise RuntimeError("the runtime has ended; it had no NA, and makes "
                                           "none any more")
                    nta = self._nta = NeutralApartment(self)
        return nta

    def _host_sta(self) -> Apartment:
        """R33: the host STA, ``HostSTA``, made on first need (the main STA if no STA exists
        yet); at most one, it ends with the runtime."""
        with self._host_lock:
            apt = self._apartments.get(HOST_STA)
            if apt is None:
                self._check_running()
                apt = self._create_now(HOST_STA, self._next_sta_kind())
        return apt

    def _next_sta_kind(self) -> ApartmentType:
        return rules.sta_kind(self._sta_count == 0)

    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError("enter the runtime first: `async with comsim.Runtime() as rt:`")

    def _check_running(self) -> None:
        if not self._started or self._closing:
            raise RuntimeError("the runtime is not running")

    @property
    def apartments(self) -> list[Apartment]:
        return list(self._apartments.values())

    async def create_sta(self, name: str | None = None) -> Apartment:
        """A new STA; the first one is the main STA (R4).

        Raises:
            ValueError: the name is taken in this runtime, or reserved (``NA``, ``HostSTA``:
                R5, R33); TypeError: the name is not a str (each a COMError(E_INVALIDARG) too).
            RuntimeError: the runtime is not running.
        """
        if name is not None:
            check_name("create_sta", "name", name)
            if name in RESERVED_NAMES:
                raise BadArgumentValue(f"create_sta({name!r}): the name is reserved for the "
                                       "runtime's own apartments (the MTA, rt.mta; the neutral "
                                       "apartment, rt.nta; or the host STA that CoCreateInstance "
                                       "makes); choose another")
        self._check_running()
        with self._host_lock:  # the main STA is the first one, whoever makes it (R4, R33)
            if name is None:
                name = f"sta{self._sta_count + 1}"
            return self._create_now(name, self._next_sta_kind())

    def _create_now(self, name: str, kind: ApartmentType) -> Apartment:
        if name in self._apartments:
            raise BadArgumentValue(f"an apartment named {name!r} exists in this runtime")
        tid = self._new_thread_id() if kind.is_sta else 0
        apt = Apartment(self, name, kind, tid)
        self._apartments[name] = apt
        try:
            self._transport.start(apt)
        except BaseException:
            del self._apartments[name]
            raise
        if kind.is_sta:
            self._sta_count += 1
        return apt

    # ---------------------------------------------------------------- ids and time

    def _ticks_since(self, t: float) -> int:
        return max(0, round((self._now() - t) * 1000))

    # ---------------------------------------------------------------- fault injection
    def set_latency(self, seconds: float | Callable[[random.Random], float], *,
                    source: str | None = None, target: str | None = None) -> None:
        """Deterministic runtime only: delay messages (in virtual time) from apartment
        ``source`` to apartment ``target`` (None: any). ``seconds`` may be a function of the
        runtime's seeded ``random.Random``.

        Raises:
            RuntimeError: on the threaded runtime; a deterministic one not yet entered.
            COMError(E_INVALIDARG), also a TypeError or ValueError: ``seconds`` neither a
                finite number >= 0 nor a function; ``source`` or ``target`` not a str. A
                function that raises or gives a bad delay is traced (``latency.error``) and
                delays nothing.
        """
        if self.deterministic:
            self._check_started()  # its transport comes with the loop it is entered on
        if not callable(seconds):
            check_seconds("set_latency", "seconds", seconds)
        for what, name in (("source", source), ("target", target)):
            if name is not None:
                check_name("set_latency", what, name)
        self._transport.set_latency((source, target), seconds)

    def inject_fault(self, method: str, error: int | BaseException, *,
                     apartment: str | None = None, probability: float = 1.0) -> None:
        """Make server methods named ``method`` (in ``apartment``, None: any) fail before they
        run: with ``COMError(error)`` for an HRESULT, else by raising ``error`` (R14 maps it).
        ``probability`` < 1 draws from the runtime's seeded random source, so a deterministic
        runtime replays the same faults for the same seed.

        Raises:
            COMError(E_INVALIDARG), also a TypeError or ValueError: ``method`` or
                ``apartment`` not a str, ``error`` neither an HRESULT nor an exception,
                ``probability`` not in [0, 1].
        """
        self._faults.append(checked_fault(method, error, apartment, probability))

    def schedule_shutdown(self, apartment: Apartment, delay: float) -> None:
        """Shut ``apartment`` down ``delay`` seconds from now (virtual seconds on the
        deterministic runtime): an apartment that dies at a chosen moment (R18).

        Raises:
            COMError(E_FAIL): ``apartment`` is the MTA or the NA, which end with the runtime.
            COMError(E_INVALIDARG): ``apartment`` is not one of this runtime's, or ``delay`` is
                not a finite number >= 0.
            RuntimeError: the runtime has not been entered.
        """
        if (not isinstance(apartment, Apartment | NeutralApartment)
                or apartment._rt is not self):
            raise COMError(hr.E_INVALIDARG, f"schedule_shutdown({safe_repr(apartment)}, ...): "
                                            "not an apartment of this runtime")
        code = rules.shutdown_allowed(apartment.type, self._closing)
        if code or not isinstance(apartment, Apartment):
            raise COMError(code or hr.E_FAIL, f"the {apartment.name} shuts down only with its "
                           "runtime; leave the `async with Runtime()` block instead")
        check_seconds("schedule_shutdown", "delay", delay)
        loop = self._host_loop
        if loop is None:
            raise RuntimeError("enter the runtime first: `async with comsim.Runtime() as rt:`")
        at_delay(loop, delay, lambda: self._background.append(
            loop.create_task(apartment._shutdown())))

    def _fault_for(self, method: str, apartment: Apartment) -> BaseException | None:
        return fault_for(self._faults, self._rng, method, apartment.name)

    def __repr__(self) -> str:
        mode = f"deterministic seed={self.seed}" if self.deterministic else "threaded"
        return f"<comsim.Runtime {mode} apartments={list(self._apartments)}>"
