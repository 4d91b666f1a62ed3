"""CoDisconnectObject (R17) and apartment shutdown (R18)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from typing import Any

import anyio
import pytest

import comsim
from comsim import hresult

from ..helpers import add_via, drain, new_call, unmarshal


class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Block(self, entered: Any, release: Any) -> str: ...
    async def DisconnectSelf(self, entered: Any, release: Any) -> str: ...
    async def NapThenDisconnect(self, entered: Any) -> str: ...


AsyncICalc = comsim.async_interface(ICalc)


class Calc(comsim.CoClass, ICalc):
    def __init__(self) -> None:
        super().__init__()
        self.cancelled = 0
        self.finished = 0

    async def Add(self, a, b):
        return a + b

    async def Block(self, entered, release):
        try:
            entered.Signal()
            await release.Wait(0, comsim.INFINITE)  # a COM wait
        except BaseException:
            self.cancelled += 1
            raise
        self.finished += 1
        return "released"

    async def DisconnectSelf(self, entered, release):
        comsim.CoDisconnectObject(self)  # from inside a call on this very object
        entered.Signal()
        await release.Wait(0, comsim.INFINITE)
        return "disconnected myself"

    async def NapThenDisconnect(self, entered):
        entered.Signal()
        await anyio.sleep(1)  # not a COM wait: the STA is blocked, later calls queue up
        comsim.CoDisconnectObject(self)
        await anyio.sleep(1)
        return "napped"


class PatientCalc(Calc):
    cancel_policy = "cooperative"  # R18: shutdown cancels its tasks all the same


def make_in(cls: type[Calc] = Calc) -> Any:
    async def make() -> tuple[Calc, comsim.MarshalStream]:
        obj = cls()
        return obj, comsim.marshal_interface(obj, ICalc, flags=comsim.MSHLFLAGS.TABLESTRONG)

    return make


async def hresult_of(apt: comsim.Apartment, fn: Any) -> int:
    """Run ``fn`` in ``apt``; the HRESULT of the COMError it raises (S_OK if none)."""
    try:
        await apt.run(fn)
    except comsim.COMError as exc:
        return exc.hresult
    return hresult.S_OK


def one_outcome_per_call(events: Any) -> None:
    """Every call sent ended exactly once on the client side, and returned at most once."""
    sent = Counter(e["call_id"] for e in events.events("call.sent"))
    completed = Counter(e["call_id"] for e in events.events("call.completed"))
    returned = Counter(e["call_id"] for e in events.events("call.returned"))
    assert sent and all(n == 1 for n in sent.values()), sent
    assert completed == Counter(dict.fromkeys(sent, 1)), (sent, completed)
    assert all(n == 1 for n in returned.values()), returned


# --------------------------------------------------------------------------- R17
@pytest.mark.asyncio
async def test_disconnect_outside_objects_apartment(rt: comsim.Runtime) -> None:  # R17, R4
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")
    obj, stream = await srv.run(make_in())

    async def disconnect() -> None:
        comsim.CoDisconnectObject(obj)

    assert await hresult_of(cli, disconnect) == hresult.RPC_E_WRONG_THREAD
    assert await hresult_of(rt.mta, disconnect) == hresult.RPC_E_WRONG_THREAD
    with pytest.raises(comsim.COMError) as exc:
        comsim.CoDisconnectObject(obj)  # from no apartment
    assert exc.value.hresult == hresult.CO_E_NOTINITIALIZED
    # nothing was disconnected
    proxy = await cli.run(unmarshal(stream))
    assert await cli.run(add_via(proxy)) == 3


@pytest.mark.asyncio
async def test_disconnect_idle_object(rt: comsim.Runtime) -> None:  # R17
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")
    obj, strong = await srv.run(make_in())

    async def prepare() -> tuple[Any, Any]:
        normal = comsim.marshal_interface(obj, ICalc)
        weak = comsim.marshal_interface(obj, ICalc, flags=comsim.MSHLFLAGS.TABLEWEAK)
        return normal, weak

    normal, weak = await srv.run(prepare)
    cookie = await srv.run(_register(rt, obj))
    proxy = await cli.run(unmarshal(strong))
    assert await cli.run(add_via(proxy)) == 3

    async def disconnect() -> None:
        comsim.CoDisconnectObject(obj)

    await srv.run(disconnect)
    # no call was running: existing proxies fail RPC_E_DISCONNECTED at once
    assert await hresult_of(cli, add_via(proxy)) == hresult.RPC_E_DISCONNECTED
    # outstanding marshal data and GIT entries fail to unmarshal
    for stream in (strong, normal, weak):
        assert await hresult_of(cli, unmarshal(stream)) == hresult.CO_E_OBJNOTCONNECTED

    async def from_git() -> Any:
        return rt.git.GetInterfaceFromGlobal(cookie, ICalc)

    assert await hresult_of(cli, from_git) == hresult.CO_E_OBJNOTCONNECTED

    # marshalling again makes a new stub: a working proxy; the old one stays dead
    async def remarshal() -> comsim.MarshalStream:
        return comsim.marshal_interface(obj, ICalc)

    fresh = await cli.run(unmarshal(await srv.run(remarshal)))
    assert await cli.run(add_via(fresh)) == 3
    assert await hresult_of(cli, add_via(proxy)) == hresult.RPC_E_DISCONNECTED


def _register(rt: comsim.Runtime, obj: Any) -> Any:
    async def register() -> int:
        return rt.git.RegisterInterfaceInGlobal(obj, ICalc)

    return register


@pytest.mark.asyncio
async def test_disconnect_while_call_runs(rt: comsim.Runtime) -> None:  # R17
    srv = await rt.create_sta("srv")
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, strong = await srv.run(make_in())
    cookie = await srv.run(_register(rt, obj))
    pa = await a.run(unmarshal(strong))
    pb = await b.run(unmarshal(strong))
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def block() -> str:
        return await pa.Block(entered, release)

    async def disconnect() -> None:
        comsim.CoDisconnectObject(obj)

    running = asyncio.ensure_future(a.run(block))
    try:
        await entered.Wait(0, comsim.INFINITE)
        await srv.run(disconnect)  # runs nested: srv waits in a COM wait inside Block
        # a new call while Block still runs
        assert await hresult_of(b, add_via(pb)) == hresult.CO_E_OBJNOTCONNECTED
        assert not running.done()
    finally:
        release.Signal()
    assert await running == "released"  # the running call finished; its reply was delivered
    assert obj.finished == 1
    # now it has finished: calls through existing proxies fail RPC_E_DISCONNECTED
    assert await hresult_of(b, add_via(pb)) == hresult.RPC_E_DISCONNECTED
    assert await hresult_of(a, add_via(pa)) == hresult.RPC_E_DISCONNECTED
    assert await hresult_of(b, unmarshal(strong)) == hresult.CO_E_OBJNOTCONNECTED

    async def from_git() -> Any:
        return rt.git.GetInterfaceFromGlobal(cookie, ICalc)

    assert await hresult_of(b, from_git) == hresult.CO_E_OBJNOTCONNECTED

    async def remarshal() -> comsim.MarshalStream:
        return comsim.marshal_interface(obj, ICalc)

    fresh = await b.run(unmarshal(await srv.run(remarshal)))
    assert await b.run(add_via(fresh)) == 3


@pytest.mark.asyncio
async def test_disconnect_from_inside_a_call(rt: comsim.Runtime) -> None:  # R17
    srv = await rt.create_sta("srv")
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _obj, strong = await srv.run(make_in())
    pa = await a.run(unmarshal(strong))
    pb = await b.run(unmarshal(strong))
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def call() -> str:
        return await pa.DisconnectSelf(entered, release)

    running = asyncio.ensure_future(a.run(call))
    try:
        await entered.Wait(0, comsim.INFINITE)
        assert await hresult_of(b, add_via(pb)) == hresult.CO_E_OBJNOTCONNECTED
        assert await hresult_of(b, unmarshal(strong)) == hresult.CO_E_OBJNOTCONNECTED
    finally:
        release.Signal()
    assert await running == "disconnected myself"  # its own reply is delivered
    assert await hresult_of(b, add_via(pb)) == hresult.RPC_E_DISCONNECTED


@pytest.mark.asyncio
@pytest.mark.deterministic_only  # virtual time: the second call is queued before the nap ends
async def test_disconnect_fails_queued_call_objnotconnected(rt: comsim.Runtime) -> None:  # R17
    srv = await rt.create_sta("srv")
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _obj, strong = await srv.run(make_in())
    pa = await a.run(unmarshal(strong))
    pb = await b.run(unmarshal(strong))
    entered = comsim.ManualResetEvent()

    async def nap() -> str:
        return await pa.NapThenDisconnect(entered)

    with comsim.testing.capture_trace() as events:
        running = asyncio.ensure_future(a.run(nap))
        await entered.Wait(0, comsim.INFINITE)
        # srv is blocked (not in a COM wait): this call queues behind the running one, and
        # the running one disconnects the object while it is queued
        code = await hresult_of(b, add_via(pb))
        assert await running == "napped"
    add = events.events("call.arrived", method="Add")
    disconnecting_call_end = events.events("call.returned", method="NapThenDisconnect")
    assert len(add) == 1 and len(disconnecting_call_end) == 1
    assert events.index(add[0]) < events.index(disconnecting_call_end[0])  # it was queued
    assert events.events("call.dispatched", method="Add") == []
    assert code == hresult.CO_E_OBJNOTCONNECTED  # queued while the disconnecting call ran
    assert await hresult_of(b, add_via(pb)) == hresult.RPC_E_DISCONNECTED


# --------------------------------------------------------------------------- R18
@pytest.mark.asyncio
async def test_shutdown_with_call_in_flight(rt: comsim.Runtime) -> None:  # R18
    srv = await rt.create_sta("srv")
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, strong = await srv.run(make_in(PatientCalc))
    pa = await a.run(unmarshal(strong))
    pb = await b.run(unmarshal(strong))
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()
    unit_started = comsim.ManualResetEvent()

    async def block() -> str:
        return await pa.Block(entered, release)

    async def waiting_unit() -> str:
        unit_started.Signal()
        await release.Wait(0, comsim.INFINITE)
        return "unit done"

    with comsim.testing.capture_trace() as events:
        call = asyncio.ensure_future(a.run(block))
        await entered.Wait(0, comsim.INFINITE)
        unit = asyncio.ensure_future(srv.run(waiting_unit))  # nested: srv is in a COM wait
        await unit_started.Wait(0, comsim.INFINITE)
        await srv.shutdown()  # release is never signalled: nothing may hang
        for fut in (call, unit):
            with pytest.raises(comsim.COMError) as exc:
                await fut
            assert exc.value.hresult == hresult.RPC_E_DISCONNECTED
        # later calls and later run calls
        assert await hresult_of(b, add_via(pb)) == hresult.RPC_E_DISCONNECTED
        assert await hresult_of(a, add_via(pa)) == hresult.RPC_E_DISCONNECTED
        assert await hresult_of(srv, waiting_unit) == hresult.RPC_E_DISCONNECTED
    assert obj.cancelled == 1  # its task was cancelled although the policy is cooperative
    assert obj.finished == 0
    assert not srv.alive
    one_outcome_per_call(events)
    release.Signal()


@pytest.mark.asyncio
async def test_shutdown_every_call_ends_once(rt: comsim.Runtime) -> None:  # R18
    srv = await rt.create_sta("srv")
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    obj, strong = await srv.run(make_in())
    release = comsim.ManualResetEvent()
    pa = await a.run(unmarshal(strong))
    callers = [a, b, rt.mta]
    entered = [comsim.ManualResetEvent() for _ in callers]

    def blocker(ev: Any) -> Any:
        async def use() -> str:
            return await comsim.unmarshal_interface(strong).Block(ev, release)

        return use

    with comsim.testing.capture_trace() as events:
        tasks = []
        for apt, ev in zip(callers, entered, strict=True):
            tasks.append(asyncio.ensure_future(apt.run(blocker(ev))))
            await ev.Wait(0, comsim.INFINITE)  # each starts nested on top of the previous
        await srv.shutdown()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        late = await hresult_of(a, add_via(pa))  # a call sent after the shutdown
    assert [getattr(r, "hresult", r) for r in results] == [hresult.RPC_E_DISCONNECTED] * 3
    assert late == hresult.RPC_E_DISCONNECTED
    assert obj.cancelled == 3 and obj.finished == 0
    one_outcome_per_call(events)
    assert len(events.events("call.sent", method="Block")) == 3
    release.Signal()


@pytest.mark.asyncio
@pytest.mark.deterministic_only  # virtual time: the queued work arrives before the nap ends
async def test_shutdown_fails_queued_work(rt: comsim.Runtime) -> None:  # R18
    srv = await rt.create_sta("srv")
    a = await rt.create_sta("a")
    _obj, strong = await srv.run(make_in())
    pa = await a.run(unmarshal(strong))
    started = comsim.ManualResetEvent()
    ran: list[str] = []

    async def blocker() -> None:
        started.Signal()
        await anyio.sleep(1)  # not a COM wait: everything sent meanwhile queues up
        await srv.shutdown()  # from inside: the teardown cancels this unit
        await anyio.sleep_forever()

    async def queued_unit() -> None:
        ran.append("queued unit")

    with comsim.testing.capture_trace() as events:
        first = asyncio.ensure_future(srv.run(blocker))
        await started.Wait(0, comsim.INFINITE)
        call = asyncio.ensure_future(a.run(add_via(pa)))
        unit = asyncio.ensure_future(srv.run(queued_unit))
        results = await asyncio.gather(first, call, unit, return_exceptions=True)
    assert [getattr(r, "hresult", r) for r in results] == [hresult.RPC_E_DISCONNECTED] * 3
    assert all(isinstance(r, comsim.COMError) for r in results)
    assert ran == []
    assert len(events.events("call.arrived", method="Add")) == 1  # it was queued
    assert events.events("call.dispatched", method="Add") == []
    one_outcome_per_call(events)


@pytest.mark.asyncio
async def test_proxies_bound_to_dead_apartment(rt: comsim.Runtime) -> None:  # R18, R12
    srv = await rt.create_sta("srv")
    other = await rt.create_sta("other")
    a = await rt.create_sta("a")
    _obj, strong = await other.run(make_in())
    held_by_srv = await srv.run(unmarshal(strong))  # a proxy bound to srv
    assert await srv.run(add_via(held_by_srv)) == 3
    await srv.shutdown()

    async def use_dead() -> int:
        return await held_by_srv.Add(1, 2)

    async def qi_dead() -> Any:
        return held_by_srv.QueryInterface(ICalc)

    assert await hresult_of(a, use_dead) == hresult.CO_E_OBJNOTCONNECTED
    assert await hresult_of(a, qi_dead) == hresult.CO_E_OBJNOTCONNECTED
    with pytest.raises(comsim.COMError) as exc:
        await held_by_srv.Add(1, 2)  # from no apartment: R12's first check wins
    assert exc.value.hresult == hresult.CO_E_NOTINITIALIZED
    assert isinstance(held_by_srv.Release(), int)  # Release is always allowed
    # the object itself (in a live apartment) is fine
    fresh = await a.run(unmarshal(strong))
    assert await a.run(add_via(fresh)) == 3


@pytest.mark.asyncio
async def test_a_call_abandoned_by_its_apartments_shutdown_is_never_signalled(
        rt: comsim.Runtime) -> None:  # R18, R24, R12
    """An STA that shuts down while its own asynchronous call is in flight abandons the call
    (R18: its reply is dropped): the call never ends in the client, so ``outer.Signal()`` never
    runs (R24 counts calls that end), and Finish_ through the dead proxy's call object gives
    CO_E_OBJNOTCONNECTED at once (R12) -- it does not wait for a reply that cannot come."""
    class Telling(Calc):
        async def Block(self, entered: Any, release: Any) -> str:
            try:
                return await super().Block(entered, release)
            finally:
                returned.Signal()  # its reply is sent in this same step of srv's loop

    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")
    obj, stream = await srv.run(make_in(Telling))
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()
    returned = comsim.ManualResetEvent()
    signals: list[Any] = []
    finish: list[int] = []

    class Outer:
        def Signal(self) -> None:
            signals.append(comsim.current_apartment())

    async def use() -> None:
        call = new_call(comsim.unmarshal_interface(stream), AsyncICalc, outer=Outer())
        call.Begin_Block(entered, release)
        await cli.shutdown()  # from inside: returns at once, the teardown comes next
        try:
            await call.Finish_Block()
        except comsim.COMError as exc:
            finish.append(exc.hresult)
        call.Release()

    with contextlib.suppress(comsim.COMError):  # R18: the run's caller may see the teardown
        await cli.run(use)
    assert finish == [hresult.CO_E_OBJNOTCONNECTED]
    await entered.Wait(0, comsim.INFINITE)  # the server got the call all the same
    release.Signal()
    await returned.Wait(0, comsim.INFINITE)
    await drain(rt, srv)  # its reply has gone to the dead apartment, and was dropped
    assert obj.finished == 1
    assert signals == []


@pytest.mark.asyncio
async def test_mta_shuts_down_only_with_runtime(rt: comsim.Runtime) -> None:  # R18
    with pytest.raises(comsim.COMError):
        await rt.mta.shutdown()

    async def alive() -> str:
        return comsim.CoGetApartmentType().name

    assert await rt.mta.run(alive) == "MTA"


async def _leave_runtime_with_work_in_flight(deterministic: bool) -> None:
    seed = 0 if deterministic else None
    async with comsim.Runtime(deterministic=deterministic, seed=seed) as rt2:
        srv = await rt2.create_sta("leak-srv")
        a = await rt2.create_sta("leak-a")
        _obj, strong = await srv.run(make_in())
        release = comsim.ManualResetEvent()
        entered = [comsim.ManualResetEvent(), comsim.ManualResetEvent()]

        def block(ev: Any) -> Any:
            async def use() -> str:
                return await comsim.unmarshal_interface(strong).Block(ev, release)

            return use

        call = asyncio.ensure_future(a.run(block(entered[0])))
        mta_call = asyncio.ensure_future(rt2.mta.run(block(entered[1])))
        for ev in entered:  # both calls are running in srv
            await ev.Wait(0, comsim.INFINITE)
    # leaving the runtime ended both calls (release was never signalled)
    for fut in (call, mta_call):
        with pytest.raises(comsim.COMError) as exc:
            await fut
        assert exc.value.hresult == hresult.RPC_E_DISCONNECTED
    release.Signal()


@pytest.mark.asyncio
@pytest.mark.threaded_only  # about OS threads
async def test_leaving_runtime_joins_threads() -> None:  # R18
    before = set(threading.enumerate())
    await _leave_runtime_with_work_in_flight(deterministic=False)
    left = [t.name for t in threading.enumerate()
            if t not in before and t.name.startswith("comsim-")]
    assert left == []


@pytest.mark.asyncio
async def test_leaving_runtime_leaves_no_task(kind: str) -> None:  # R18
    before = asyncio.all_tasks()
    await _leave_runtime_with_work_in_flight(deterministic=kind == "deterministic")
    left = [t for t in asyncio.all_tasks() if t not in before and not t.done()]
    assert left == []


@pytest.mark.asyncio
async def test_shutdown_abandons_outgoing_calls_without_cancelling(rt: comsim.Runtime) -> None:
    # R18: a dying apartment's own outgoing calls are abandoned (replies dropped); even a
    # cancellable call (R31) sends no cancel to the server, which runs on to its end
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")
    obj, stream = await srv.run(make_in())
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def client() -> None:
        assert comsim.CoEnableCallCancellation() == hresult.S_OK
        proxy = comsim.unmarshal_interface(stream)
        await proxy.Block(entered, release)

    with comsim.testing.capture_trace() as events:
        waiting = asyncio.ensure_future(cli.run(client))
        await entered.Wait(0, comsim.INFINITE)
        await cli.shutdown()
        with pytest.raises(comsim.COMError) as exc:
            await waiting
        assert exc.value.hresult == hresult.RPC_E_DISCONNECTED  # the run() caller (R18)
        release.Signal()

        async def finished() -> int:
            return obj.finished

        while await srv.run(finished) == 0:  # a round trip per step; no sleeping
            pass
    assert obj.cancelled == 0 and obj.finished == 1
    assert events.events("call.cancel_requested", method="Block") == []
    dropped = events.events("call.reply_dropped", method="Block")
    assert [e["hresult"] for e in dropped] == [hresult.S_OK]


@pytest.mark.asyncio
async def test_shutdown_abandons_an_async_call_awaited_in_finish(rt: comsim.Runtime) -> None:
    # R18, R32: as for a synchronous call, a dying apartment's call awaited in Finish_ is
    # abandoned: no cancel reaches the server, which runs on to its end (before, Finish_'s R32
    # clean-up sent a Cancel(0) and interrupted it)
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")
    obj, stream = await srv.run(make_in())
    entered, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()

    async def client() -> None:
        proxy = comsim.unmarshal_interface(stream)
        call = new_call(proxy, AsyncICalc)
        call.Begin_Block(entered, release)
        await call.Finish_Block()

    async def nothing() -> None:
        pass

    with comsim.testing.capture_trace() as events:
        waiting = asyncio.ensure_future(cli.run(client))
        await entered.Wait(0, comsim.INFINITE)
        # the client is in Finish_'s wait: another unit starts only then (R2); without this, on
        # the threaded runtime the shutdown may come between Begin_ and Finish_ (the unit then
        # ends with its own CO_E_OBJNOTCONNECTED)
        await cli.run(nothing)
        await cli.shutdown()
        with pytest.raises(comsim.COMError) as exc:
            await waiting
        assert exc.value.hresult == hresult.RPC_E_DISCONNECTED  # the run() caller (R18)
        release.Signal()

        async def finished() -> int:
            return obj.finished

        while await srv.run(finished) == 0:  # a round trip per step; no sleeping
            pass
    assert obj.cancelled == 0 and obj.finished == 1
    assert events.events("call.cancel_requested", method="Block") == []


@pytest.mark.asyncio
@pytest.mark.deterministic_only  # one loop: the turn's order is exact
async def test_teardown_answers_a_job_cancelled_just_before_it() -> None:  # R18
    """A ``run`` job whose task was cancelled before its first step, with the teardown's check
    in the same loop turn as that step (after it, before the task's done callbacks), is
    answered all the same: its caller does not wait forever (threaded fuzz seed 12)."""
    from comsim._runtime.jobs import _Job

    async def never() -> None:  # pragma: no cover - cancelled before its first step
        raise AssertionError("ran")

    async with comsim.Runtime(deterministic=True) as rt:
        sta = await rt.create_sta("s")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        job = _Job(never, (), loop, waiter)
        job.task = sta._spawn(sta._run_job(job, None), job)
        job.task.cancel()
        sta._accepting = False  # what ``shutdown`` does first, then the teardown begins
        sta._begin_teardown()  # its first step comes right after the job task's in one turn
        with anyio.fail_after(5):
            ok, value = await waiter
        assert not ok
        assert isinstance(value, comsim.COMError)
        assert value.hresult == hresult.RPC_E_DISCONNECTED
