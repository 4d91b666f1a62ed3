"""Regression tests for reported defects: a unit that spins while it waits for its turn, interrupts
that kill an apartment's thread, a runtime that never starts, callers left unanswered at
shutdown, wrong HRESULTs, NaN time-outs, lax argument checks and a wrong pending type. Each
test is named after its defect and names the COM rules it checks.

A test that could hang on a defect fails fast instead: a scenario that may stall or let an
interrupt escape runs in a thread of its own with a wall-clock bound (``_run_guarded``); on
the virtual-time loop, a wall-clock watchdog moves the clock on when virtual time stands still
(``_unstick_after``); elsewhere ``anyio.fail_after`` bounds the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult as hr
from comsim.testing import VirtualTimeLoop

from ..helpers import AsyncISum, ISum, add_via, pair, thread_id

INFINITE = comsim.INFINITE
INTERRUPTS: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
}


# --------------------------------------------------------------------------- interfaces
class IWork(comsim.Interface):
    async def Work(self, seconds: float, entered: Any = None) -> str: ...


class IServe(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Raise(self, name: str) -> int: ...
    async def Explode(self, name: str) -> Any: ...
    async def RaiseCancelled(self) -> int: ...
    async def Unloadable(self) -> Any: ...
    async def Echo(self, value: Any) -> str: ...
    async def Block(self, entered: Any, release: Any) -> str: ...


class IRelay(comsim.Interface):
    async def CallOut(self, target: Any, entered: Any, release: Any) -> str: ...


AsyncIServe = comsim.async_interface(IServe)


# --------------------------------------------------------------------------- values (R11)
class Explosive:
    """Raises the named interrupt when pickled: a result whose ``__reduce__`` raises."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> Any:
        raise INTERRUPTS[self.name](f"{self.name} from __reduce__")


class Unloadable:
    """Pickles, but fails to unpickle (``int("x")`` raises ValueError)."""

    def __reduce__(self) -> Any:
        return (int, ("x",))


# --------------------------------------------------------------------------- objects
class Worker(comsim.CoClass, IWork):
    async def Work(self, seconds: float, entered: Any = None) -> str:
        if entered is not None:
            entered.Signal()
        await anyio.sleep(seconds)  # not a COM wait: the server's STA is busy meanwhile
        return "done"


class Server(comsim.CoClass, IServe):
    def __init__(self) -> None:
        super().__init__()
        self.echoed = 0

    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Raise(self, name: str) -> int:
        raise INTERRUPTS[name](f"{name} from a server method")

    async def Explode(self, name: str) -> Any:
        return Explosive(name)

    async def RaiseCancelled(self) -> int:
        raise asyncio.CancelledError("raised by the method itself; nobody cancelled it")

    async def Unloadable(self) -> Any:
        return Unloadable()

    async def Echo(self, value: Any) -> str:
        self.echoed += 1
        return repr(value)

    async def Block(self, entered: Any, release: Any) -> str:
        entered.Signal()
        await release.Wait(0, INFINITE)  # a COM wait
        return "released"


class Relay(comsim.CoClass, IRelay):
    async def CallOut(self, target: Any, entered: Any, release: Any) -> str:
        # an outgoing synchronous call made while handling an incoming call
        return await target.Block(entered, release)


class PlainSumCall(comsim.ServerCall, AsyncISum):
    """A server call object that does not implement ICancelMethodCalls (no Cancel)."""

    def Begin_Add(self, a: int, b: int) -> int:
        self.result = a + b
        if self.outer is not None:
            self.outer.Signal()
        return hr.S_OK

    def Finish_Add(self) -> int:
        return self.result


class CancellableSumCall(PlainSumCall, comsim.ICancelMethodCalls):
    """A server call object that does implement ICancelMethodCalls."""

    async def Cancel(self, seconds: float) -> int:
        return hr.RPC_E_CALL_COMPLETE

    def TestCancel(self) -> int:
        return hr.RPC_E_CALL_COMPLETE


class Summer(comsim.CoClass, ISum, comsim.ICallFactory):
    """Makes its own call objects (R19, R26)."""

    def __init__(self, call_class: type[PlainSumCall]) -> None:
        super().__init__()
        self.call_class = call_class

    def CreateCall(self, async_iface: Any, outer: Any = None) -> Any:
        return self.call_class(outer)

    async def Add(self, a: int, b: int) -> int:
        return a + b


class RecordingFilter(comsim.IMessageFilter):
    """Handles every call, lets queued work in, and records MessagePending's arguments."""

    def __init__(self, on_pending: Any) -> None:
        self.pendings: list[tuple[int, int, int]] = []
        self.on_pending = on_pending

    def MessagePending(self, callee_thread, tick_count, pending_type):
        self.pendings.append((callee_thread, tick_count, pending_type))
        self.on_pending.Signal()
        return comsim.PENDINGMSG_WAITDEFPROCESS


class RaisingFilter(comsim.IMessageFilter):
    """HandleInComingCall raises the given interrupt."""

    def __init__(self, exc_type: type[BaseException]) -> None:
        self.exc_type = exc_type
        self.calls = 0

    def HandleInComingCall(self, call_type, caller_thread, tick_count, interface_info):
        self.calls += 1
        raise self.exc_type("from HandleInComingCall")


class RaisingOuter:
    """A completion notification object (R24) whose Signal raises the given interrupt."""

    def __init__(self, exc_type: type[BaseException]) -> None:
        self.exc_type = exc_type
        self.calls = 0

    def Signal(self) -> None:
        self.calls += 1
        raise self.exc_type("from outer.Signal")


# --------------------------------------------------------------------------- helpers
async def _alive() -> str:
    return "alive"


async def _pair(rt: comsim.Runtime, flt: Any = None) -> tuple[Any, Any, Server, Any]:
    """STAs 'srv' (a Server, and ``flt`` as its message filter) and 'cli' (a proxy to it)."""
    p = await pair(rt, Server, IServe, message_filter=flt)
    return p.server, p.client, p.obj, p.proxy


async def _com_error(apt: Any, fn: Callable[[], Awaitable[Any]]) -> comsim.COMError:
    """Run ``fn`` in ``apt``; the COMError it raises (fails the test if it raises none)."""
    with pytest.raises(comsim.COMError) as exc:
        await apt.run(fn)
    return exc.value


def _run_guarded(kind: str, scenario: Callable[[comsim.Runtime], Awaitable[Any]], *,
                 seed: int = 0, timeout: float = 2.5) -> Any:
    """``await scenario(rt)`` inside a fresh ``Runtime`` of ``kind`` (deterministic: seeded, on
    comsim's virtual-time loop), run in a thread of its own; gives its result or raises what
    it raised. A hang fails the test within ``timeout`` wall seconds (the stuck thread, a
    daemon, is left behind, blocked), and an interrupt that escapes the runtime fails the test
    instead of stopping pytest."""
    out: dict[str, Any] = {}
    settled = threading.Event()

    async def main() -> None:
        try:
            async with comsim.Runtime(deterministic=kind == "deterministic",
                                      seed=seed if kind == "deterministic" else None) as rt:
                out["value"] = await scenario(rt)
        except BaseException as exc:
            out["error"] = exc
        finally:
            settled.set()

    def body() -> None:
        try:
            if kind == "deterministic":
                comsim.testing.run(main)
            else:
                asyncio.run(main())
        except BaseException as exc:
            out["escaped"] = exc
        finally:
            settled.set()

    before = set(threading.enumerate())
    thread = threading.Thread(target=body, name="test_faults-guard", daemon=True)
    thread.start()
    try:
        if not settled.wait(timeout):
            pytest.fail(f"hung: the scenario and its runtime did not end within {timeout} s")
        thread.join(0.5)
    finally:
        _let_threads_end(before, 0.5)
    escaped = out.get("escaped")
    if escaped is not None:
        if isinstance(escaped, KeyboardInterrupt | SystemExit):
            pytest.fail(f"{escaped!r} escaped the runtime's event loop")
        raise escaped
    error = out.get("error")
    if error is not None and not isinstance(error, asyncio.CancelledError):
        if isinstance(error, KeyboardInterrupt | SystemExit):
            pytest.fail(f"{error!r} escaped the runtime")
        raise error
    if thread.is_alive():
        pytest.fail(f"the event loop never closed: tasks were left that never end ({error!r})")
    if error is not None:
        raise error
    return out.get("value")


def _let_threads_end(before: set[threading.Thread], seconds: float) -> None:
    """Give the threads started since ``before`` up to ``seconds`` in all to end (an apartment
    thread killed by a defect prints its traceback as it dies)."""
    deadline = time.monotonic() + seconds
    for t in set(threading.enumerate()) - before:
        t.join(max(0.0, deadline - time.monotonic()))
    # and collect now what a killed loop left behind: a task collected later, while pytest
    # builds an AST, would log "exception was never retrieved" from inside the AST
    # constructor, which then fails with "AST constructor recursion depth mismatch"
    gc.collect()


@contextlib.contextmanager
def _unstick_after(loop: asyncio.AbstractEventLoop, seconds: float) -> Iterator[threading.Event]:
    """A wall-clock watchdog for the virtual-time loop. A loop that spins at a fixed virtual
    time never reaches a virtual deadline (so ``anyio.fail_after`` cannot fire); if the block
    has not ended after ``seconds`` real seconds, the clock is moved 1000 virtual seconds on,
    which lets the pending timers fire, so the test ends (and fails) instead of hanging. The
    event it gives is set when that happened."""
    assert isinstance(loop, VirtualTimeLoop)
    fired = threading.Event()
    stop = threading.Event()

    def jump() -> None:
        loop._vtime += 1000.0  # type: ignore[attr-defined]

    def watch() -> None:
        if stop.wait(seconds):
            return
        fired.set()
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(jump)

    watcher = threading.Thread(target=watch, name="test_faults-watchdog", daemon=True)
    watcher.start()
    try:
        yield fired
    finally:
        stop.set()
        watcher.join()


# --------------------------------------------------------------------------- defect 1
@pytest.mark.deterministic_only
@pytest.mark.parametrize("s", [3, 4, 5, 8])
@pytest.mark.asyncio
async def test_defect1_cancelled_unit_waiting_for_top_does_not_spin(s: int) -> None:  # R2, R32
    # u1's reply arrives while u2 is nested above it on STA a; then u1's scope expires. u1 must
    # wait, without spinning, until u2's unit ends (LIFO), at virtual t = 2.
    loop = asyncio.get_running_loop()
    ends: dict[str, float] = {}
    with _unstick_after(loop, 1.5) as stuck:
        async with comsim.Runtime(deterministic=True, seed=s) as rt:
            a = await rt.create_sta("a")
            b = await rt.create_sta("b")

            async def make() -> Any:
                return comsim.marshal_interface(Worker(), IWork,
                                                flags=comsim.MSHLFLAGS.TABLESTRONG)

            stream = await b.run(make)

            async def u1() -> None:
                with anyio.move_on_after(0.05):
                    await comsim.unmarshal_interface(stream).Work(0.01)
                ends["u1"] = loop.time()

            async def u2() -> None:
                await anyio.sleep(0.001)
                await comsim.unmarshal_interface(stream).Work(2.0)
                ends["u2"] = loop.time()

            async with anyio.create_task_group() as tg:
                tg.start_soon(a.run, u1)
                tg.start_soon(a.run, u2)
            end = loop.time()
    assert not stuck.is_set(), "virtual time stood still: the cancelled unit spun"
    assert end == pytest.approx(2.0, abs=0.05)
    assert ends["u2"] == pytest.approx(2.0, abs=0.05)
    assert ends["u1"] >= ends["u2"]  # u1 resumed only once u2's unit had ended (R2)


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_defect1_cancelled_unit_waiting_for_top_does_not_spin_threaded(
        rt: comsim.Runtime) -> None:  # R2, R32
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def make() -> Any:
        return comsim.marshal_interface(Worker(), IWork, flags=comsim.MSHLFLAGS.TABLESTRONG)

    stream = await b.run(make)
    entered = comsim.ManualResetEvent()
    ends: dict[str, float] = {}

    async def u1() -> None:
        with anyio.move_on_after(0.05):
            await comsim.unmarshal_interface(stream).Work(0.01, entered)
        ends["u1"] = time.monotonic()

    async def u2() -> None:  # starts nested above u1, which waits in its call (R2)
        await comsim.unmarshal_interface(stream).Work(0.5)
        ends["u2"] = time.monotonic()

    cpu0 = time.process_time()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.run, u1)
            await entered.Wait(0, INFINITE)
            tg.start_soon(a.run, u2)
    cpu = time.process_time() - cpu0
    assert ends["u1"] >= ends["u2"]  # u1 resumed only once u2's unit had ended (R2)
    # u1 waits about 0.45 s for u2's unit to end: waiting must not burn that CPU time
    assert cpu < 0.2, f"{cpu:.3f} s of CPU in about 0.5 s: the cancelled unit spun"


# --------------------------------------------------------------------------- defect 2
async def _interrupt_scenario(rt: comsim.Runtime, source: str,
                              exc_type: type[BaseException]) -> None:
    name = exc_type.__name__
    flt = RaisingFilter(exc_type) if source == "HandleInComingCall" else None
    srv, cli, _obj, proxy = await _pair(rt, flt)
    if source == "method":

        async def raise_() -> int:
            return await proxy.Raise(name)

        err = await _com_error(cli, raise_)
        assert err.hresult == hr.RPC_E_SERVERFAULT, err
        assert isinstance(err.__cause__, exc_type), repr(err.__cause__)
    elif source == "__reduce__":

        async def explode() -> Any:
            return await proxy.Explode(name)

        # R11: a result pickle refuses, whatever its hook raises: RPC_X_BAD_STUB_DATA (the
        # method did not raise, R14); the message names the interrupt
        err = await _com_error(cli, explode)
        assert err.hresult == hr.RPC_X_BAD_STUB_DATA, err
        assert name in str(err), err
    elif source == "outer.Signal":
        outer = RaisingOuter(exc_type)

        async def begin_finish() -> int:
            factory = proxy.QueryInterface(comsim.ICallFactory)
            call = factory.CreateCall(AsyncIServe, outer=outer)
            factory.Release()
            call.Begin_Add(1, 2)
            return await call.Finish_Add()

        assert await cli.run(begin_finish) == 3
        assert outer.calls == 1
    else:  # HandleInComingCall: the call is handled as if SERVERCALL_ISHANDLED
        assert await cli.run(add_via(proxy)) == 3
        assert flt is not None and flt.calls == 1
    # both apartments survive
    with anyio.fail_after(2):
        assert await cli.run(add_via(proxy)) == 3
        assert await srv.run(_alive) == "alive"
        assert await cli.run(_alive) == "alive"


@pytest.mark.parametrize("exc_name", list(INTERRUPTS))
@pytest.mark.parametrize("kind", ["threaded", "deterministic"])
@pytest.mark.parametrize("source", ["method", "__reduce__", "outer.Signal", "HandleInComingCall"])
def test_defect2_interrupt_does_not_kill_apartment(
        source: str, kind: str, exc_name: str) -> None:  # R11, R14, R18, R24, R16
    # the call fails with RPC_E_SERVERFAULT, the interrupt chained (R14) — from __reduce__
    # with RPC_X_BAD_STUB_DATA (R11) — or, from outer.Signal, is swallowed (R24); from
    # HandleInComingCall the call is handled (R16);
    # the apartments live on, and the `async with Runtime()` block exits normally (R18)
    exc_type = INTERRUPTS[exc_name]

    async def scenario(rt: comsim.Runtime) -> None:
        await _interrupt_scenario(rt, source, exc_type)

    _run_guarded(kind, scenario)


# --------------------------------------------------------------------------- defect 3
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="cpu= is ignored here")
def test_defect3_runtime_with_invalid_cpu_fails_at_once() -> None:  # R18
    before = set(threading.enumerate())
    out: dict[str, BaseException] = {}

    async def main() -> None:
        async with comsim.Runtime(cpu=9999):
            pass

    def body() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=body, name="test_faults-cpu", daemon=True)
    thread.start()
    thread.join(2.0)
    assert not thread.is_alive(), "entering Runtime(cpu=9999) blocked its caller's thread"
    assert isinstance(out.get("error"), OSError | ValueError), out
    left = [t for t in threading.enumerate()
            if t not in before and t.name.startswith("comsim-")]
    for t in left:
        t.join(1.0)
    assert not [t for t in left if t.is_alive()], left  # no apartment thread left behind


# --------------------------------------------------------------------------- defect 4
@pytest.mark.parametrize("s", range(12))
def test_defect4_queued_run_callers_answered_when_sta_shuts_down(s: int) -> None:  # R18, R2
    async def scenario(rt: comsim.Runtime) -> list[Any]:
        sta = await rt.create_sta("s")

        async def unit(i: int) -> int:
            if i == 0:
                await anyio.sleep(0.05)
            return i

        async def outcome(i: int) -> Any:
            try:
                return await sta.run(unit, i)
            except comsim.COMError as exc:
                return hr.name(exc.hresult)

        rt.schedule_shutdown(sta, 0.05)
        tasks = [asyncio.ensure_future(outcome(i)) for i in range(3)]
        _done, pending = await asyncio.wait(tasks, timeout=1.0)  # virtual seconds
        assert not pending, f"{len(pending)} of 3 callers of sta.run never answered"
        return [t.result() for t in tasks]

    results = _run_guarded("deterministic", scenario, seed=s, timeout=2.0)
    for i, r in enumerate(results):
        assert r in (i, "RPC_E_DISCONNECTED"), results


# --------------------------------------------------------------------------- defect 5
@pytest.mark.asyncio
async def test_defect5_method_raising_cancelled_error_is_a_server_fault(
        rt: comsim.Runtime) -> None:  # R14
    _srv, cli, _obj, proxy = await _pair(rt)

    async def raise_cancelled() -> int:
        return await proxy.RaiseCancelled()

    err = await _com_error(cli, raise_cancelled)
    assert err.hresult == hr.RPC_E_SERVERFAULT, err
    assert isinstance(err.__cause__, asyncio.CancelledError), repr(err.__cause__)
    assert await cli.run(add_via(proxy)) == 3  # the apartment serves the next call


# --------------------------------------------------------------------------- defect 6
@pytest.mark.asyncio
async def test_defect6_result_that_fails_to_unpickle_is_bad_stub_data(
        rt: comsim.Runtime) -> None:  # R11
    _srv, cli, _obj, proxy = await _pair(rt)

    async def get() -> Any:
        return await proxy.Unloadable()

    err = await _com_error(cli, get)
    assert err.hresult == hr.RPC_X_BAD_STUB_DATA, err
    assert await cli.run(add_via(proxy)) == 3


@pytest.mark.asyncio
async def test_defect6_argument_that_fails_to_unpickle_is_bad_stub_data(
        rt: comsim.Runtime) -> None:  # R11
    _srv, cli, obj, proxy = await _pair(rt)

    async def send() -> Any:
        return await proxy.Echo(Unloadable())

    err = await _com_error(cli, send)
    assert err.hresult == hr.RPC_X_BAD_STUB_DATA, err
    assert obj.echoed == 0  # the method never ran
    assert await cli.run(add_via(proxy)) == 3


# --------------------------------------------------------------------------- defect 7
@pytest.mark.asyncio
async def test_defect7_schedule_shutdown_of_mta_is_refused(rt: comsim.Runtime) -> None:  # R18
    with pytest.raises(comsim.COMError) as exc:
        rt.schedule_shutdown(rt.mta, 0)
    assert exc.value.hresult == hr.E_FAIL
    with anyio.fail_after(2):
        assert await rt.mta.run(_alive) == "alive"
    assert rt.mta.alive


# --------------------------------------------------------------------------- defect 8
@pytest.mark.asyncio
async def test_defect8_cancel_with_nan_timeout_is_invalid(rt: comsim.Runtime) -> None:  # R28
    _srv, cli, _obj, proxy = await _pair(rt)
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def body() -> tuple[Any, str]:
        factory = proxy.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(AsyncIServe)
        factory.Release()
        call.Begin_Block(entered, release)
        await entered.Wait(0, INFINITE)
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        try:
            with anyio.fail_after(0.5):
                try:
                    outcome: Any = await cancel.Cancel(math.nan)
                except comsim.COMError as exc:
                    outcome = exc.hresult
        finally:
            cancel.Release()
            release.Signal()
        try:
            finished = await call.Finish_Block()
        except comsim.COMError as exc:
            finished = hr.name(exc.hresult)
        return outcome, finished

    outcome, finished = await cli.run(body)
    assert outcome == hr.E_INVALIDARG, hr.name(outcome)
    assert finished == "released"  # nothing was cancelled


@pytest.mark.asyncio
async def test_defect8_cocancelcall_with_nan_timeout_is_invalid(
        rt: comsim.Runtime) -> None:  # R31, R28
    with pytest.raises(comsim.COMError) as exc:
        await comsim.CoCancelCall(0, math.nan)
    assert exc.value.hresult == hr.E_INVALIDARG


@pytest.mark.parametrize("ms", [math.nan, -math.inf])
@pytest.mark.asyncio
async def test_defect8_wait_with_nan_timeout_is_invalid(rt: comsim.Runtime,
                                                        ms: float) -> None:  # R23
    ev = comsim.StdEvent()
    with anyio.fail_after(0.5), pytest.raises(comsim.COMError) as exc:
        await ev.Wait(0, ms)
    assert exc.value.hresult == hr.E_INVALIDARG


# --------------------------------------------------------------------------- defect 9
@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_defect9_cocancelcall_from_plain_os_thread(rt: comsim.Runtime) -> None:  # R31
    _srv, cli, _obj, proxy = await _pair(rt)
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def call() -> str:
        assert comsim.CoEnableCallCancellation() == hr.S_OK
        try:
            return await proxy.Block(entered, release)
        except comsim.COMError as exc:
            return hr.name(exc.hresult)

    tid = await cli.run(thread_id)
    t_call = asyncio.ensure_future(cli.run(call))
    out: list[Any] = []

    def cancel_from_plain_thread() -> None:  # no apartment, no context variables of ours
        try:
            out.append(asyncio.run(comsim.CoCancelCall(tid, 0)))
        except BaseException as exc:
            out.append(exc)

    try:
        with anyio.fail_after(5):
            await entered.Wait(0, INFINITE)  # the call is pending in 'cli'
        thread = threading.Thread(target=cancel_from_plain_thread, daemon=True)
        thread.start()
        await anyio.to_thread.run_sync(thread.join, 5.0)
        assert out == [hr.S_OK], [hr.name(x) if isinstance(x, int) else x for x in out]
    finally:
        release.Signal()
    with anyio.fail_after(5):
        assert await t_call == "RPC_E_CALL_CANCELED"


# --------------------------------------------------------------------------- defect 10
@pytest.mark.asyncio
async def test_defect10_query_interface_on_released_call_object(
        rt: comsim.Runtime) -> None:  # R25
    _srv, cli, _obj, proxy = await _pair(rt)

    async def body() -> list[Any]:
        factory = proxy.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(AsyncIServe)
        factory.Release()
        assert call.Release() == 0
        outcomes: list[Any] = []
        for iface in (comsim.ISynchronize, comsim.ICancelMethodCalls, AsyncIServe):
            try:
                outcomes.append(call.QueryInterface(iface))
            except comsim.COMError as exc:
                outcomes.append(hr.name(exc.hresult))
        return outcomes

    assert await cli.run(body) == ["CO_E_OBJNOTCONNECTED"] * 3


@pytest.mark.parametrize("what", ["async interface", "CoClass"])
def test_defect10_async_interface_rejects_non_interfaces(what: str) -> None:  # R20
    bad = AsyncISum if what == "async interface" else Server
    with pytest.raises(comsim.COMError) as exc:
        comsim.async_interface(bad)
    assert exc.value.hresult == hr.E_INVALIDARG


@pytest.mark.asyncio
async def test_defect10_create_sta_rejects_non_string_name(rt: comsim.Runtime) -> None:  # R2, R4
    with pytest.raises(TypeError):
        await rt.create_sta(42)  # type: ignore[arg-type]
    assert [a.name for a in rt.apartments] == []  # (the MTA comes on first use)


@pytest.mark.asyncio
async def test_defect10_inject_fault_rejects_garbage_at_once(
        rt: comsim.Runtime) -> None:  # R14
    with pytest.raises(TypeError):
        rt.inject_fault("Add", "garbage")  # type: ignore[arg-type]


def test_defect10_comerror_takes_a_32_bit_hresult() -> None:  # R14; HRESULTs are 32 bits
    assert comsim.COMError(0x80004005).hresult == hr.E_FAIL  # unsigned form: fine
    assert comsim.COMError(hr.E_FAIL).hresult == hr.E_FAIL
    with pytest.raises(ValueError):
        comsim.COMError(2**40)
    with pytest.raises(TypeError):
        comsim.COMError("x")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_defect10_register_message_filter_rejects_non_filter(
        rt: comsim.Runtime) -> None:  # R16
    sta = await rt.create_sta("s")

    async def body() -> tuple[Any, Any]:
        try:
            outcome: Any = comsim.CoRegisterMessageFilter(42)
        except comsim.COMError as exc:
            outcome = hr.name(exc.hresult)
        return outcome, comsim.CoRegisterMessageFilter(None)

    outcome, previous = await sta.run(body)
    assert outcome == "E_INVALIDARG"
    assert previous is None  # nothing was registered


# --------------------------------------------------------------------------- defect 11
@pytest.mark.asyncio
async def test_defect11_same_apartment_call_object_without_cancel_has_no_icancelmethodcalls(
        rt: comsim.Runtime) -> None:  # R19, R27
    sta = await rt.create_sta("s")

    async def body() -> tuple[Any, Any]:
        outcomes = []
        for call_class in (CancellableSumCall, PlainSumCall):
            obj = Summer(call_class)
            factory = obj.QueryInterface(comsim.ICallFactory)
            call = factory.CreateCall(AsyncISum, None)  # the object's own call object (R19)
            assert type(call) is call_class
            try:
                outcomes.append(call.QueryInterface(comsim.ICancelMethodCalls) is call)
            except comsim.COMError as exc:
                outcomes.append(hr.name(exc.hresult))
        return outcomes[0], outcomes[1]

    cancellable, plain = await sta.run(body)
    assert cancellable is True  # it implements ICancelMethodCalls
    assert plain == "E_NOINTERFACE"


# --------------------------------------------------------------------------- defect 12
async def _pending_types(rt: comsim.Runtime, nested_in_incoming: bool) -> list[int]:
    """STA 'A' (a filter recording MessagePending) waits in an outgoing call to 'B' — made by
    a method of an object in A called from STA 'C', or by an ``A.run`` unit — when an
    ``A.run`` unit arrives; gives the pending types MessagePending saw."""
    a = await rt.create_sta("A")
    b = await rt.create_sta("B")
    c = await rt.create_sta("C")
    consulted = comsim.ManualResetEvent()
    flt = RecordingFilter(consulted)

    async def make_relay() -> Any:
        comsim.CoRegisterMessageFilter(flt)
        return comsim.marshal_interface(Relay(), IRelay)

    async def make_server() -> Any:
        return comsim.marshal_interface(Server(), IServe, flags=comsim.MSHLFLAGS.TABLESTRONG)

    relay_stream = await a.run(make_relay)
    server_stream = await b.run(make_server)
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def from_c() -> str:  # C -> A.CallOut -> B.Block: A's call is made in an incoming call
        relay = comsim.unmarshal_interface(relay_stream)
        return await relay.CallOut(comsim.unmarshal_interface(server_stream), entered, release)

    async def from_a_unit() -> str:  # an A.run unit calls B itself
        return await comsim.unmarshal_interface(server_stream).Block(entered, release)

    async def arriving() -> str:
        return "unit ran"

    with anyio.fail_after(5):
        t_call = asyncio.ensure_future(c.run(from_c) if nested_in_incoming
                                       else a.run(from_a_unit))
        t_unit = None
        try:
            await entered.Wait(0, INFINITE)  # A waits in its outgoing call to B
            t_unit = asyncio.ensure_future(a.run(arriving))
            await consulted.Wait(0, INFINITE)
        finally:
            release.Signal()
        assert await t_call == "released"
        assert t_unit is not None
        assert await t_unit == "unit ran"
    return [p[2] for p in flt.pendings]


@pytest.mark.asyncio
async def test_defect12_message_pending_type_nested_in_incoming_call(
        rt: comsim.Runtime) -> None:  # R16
    assert await _pending_types(rt, nested_in_incoming=True) == [comsim.PENDINGTYPE_NESTED]


@pytest.mark.asyncio
async def test_defect12_control_message_pending_type_toplevel_in_run_unit(
        rt: comsim.Runtime) -> None:  # R16
    assert await _pending_types(rt, nested_in_incoming=False) == [comsim.PENDINGTYPE_TOPLEVEL]


def test_runtime_seed_without_deterministic_is_an_error() -> None:  # API: the seed's meaning
    with pytest.raises(ValueError, match="deterministic=True") as exc:
        comsim.Runtime(seed=7)
    assert isinstance(exc.value, comsim.COMError) and exc.value.hresult == hr.E_INVALIDARG
    assert comsim.Runtime(deterministic=True, seed=7).seed == 7
