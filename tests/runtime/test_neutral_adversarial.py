"""The neutral apartment under pressure (R5 with the rules it touches): NA objects called from
STAs, the MTA and code in no apartment, nested and re-entrant calls under a message filter,
cancellation of every kind, shutdowns and the runtime's end while NA code runs or waits,
marshalling and identity, and exceptions of every kind from NA methods.

Each test decides from COM-RULES.md what is right first. NA objects are made in the NA
(``rt.nta.run``: the test keeps the object itself) and published in the GIT; apartments take
proxies from there. Waits between the test and its apartments are ``Gate``s (non-COM waits any
thread may open) or free-threaded events, never sleeps; where a hang would be inside comsim's
own teardown (which the per-test timeout would leave hanging), a bound (``_BOUND``) turns it
into a failure.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import comsim
import comsim.testing
from comsim import hresult

from ..helpers import hresult_of, new_call, until_cancelled


# --------------------------------------------------------------------------- scaffolding
class Gate:
    """A one-shot flag: ``open()`` from any thread, ``await wait()`` on any loop. Awaiting it
    is not a COM wait (R2): an STA waiting on it starts no other unit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = []

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        with self._lock:
            self._open = True
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_settle, fut)
            except RuntimeError:  # that loop has closed: nobody waits there any more
                pass

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._open:
                return
            fut = loop.create_future()
            self._waiters.append((loop, fut))
        await fut


#: how long a wait that must end at once may take before the test calls it a hang (a bound
#: inside comsim's own teardown, which the per-test timeout would not end)
_BOUND = 5.0


def _settle(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


class INx(comsim.Interface):
    async def Where(self) -> dict[str, Any]: ...
    async def Hold(self) -> str: ...
    async def Bounce(self, target: Any, method: str = "Ping") -> Any: ...
    async def Raise(self, kind: str) -> None: ...
    async def Same(self, other: Any) -> bool: ...
    async def Give(self) -> Any: ...
    async def Make(self) -> Any: ...
    async def Unpicklable(self) -> Any: ...
    async def Count(self, value: Any) -> int: ...
    async def Meet(self) -> int: ...
    async def Test(self) -> int: ...
    async def Relay(self, other: Any, target: Any) -> Any: ...


AsyncINx = comsim.async_interface(INx)


class _Odd(BaseException):
    """A BaseException of the user's own."""


_RAISES: dict[str, Callable[[], BaseException]] = {
    "ValueError": lambda: ValueError("plain"),
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt,
    "CancelledError": asyncio.CancelledError,  # raised by the method itself: not a cancel
    "GeneratorExit": GeneratorExit,
    "BaseException": lambda: _Odd("odd"),
}


def _here() -> dict[str, Any]:
    apt = comsim.current_apartment()
    return {"apartment": apt.name if apt is not None else None,
            "thread": comsim.current_thread_id(),
            "causality": comsim.current_causality_id()}


class Nx(comsim.CoClass, INx):
    """An NA object. ``Hold`` opens ``entered`` and waits (a non-COM wait) for ``gate``;
    ``log`` notes how each ``Hold`` ended."""

    threading_model = "Neutral"

    def __init__(self) -> None:
        super().__init__()
        self.entered = Gate()
        self.gate = Gate()
        self.ended = Gate()
        self.log: list[str] = []
        self.met: list[int] = []
        self.both = Gate()
        self.seen: list[Any] = []

    async def Where(self) -> dict[str, Any]:
        return _here()

    async def Hold(self) -> str:
        self.entered.open()
        try:
            await self.gate.wait()
        except BaseException as exc:
            self.log.append(type(exc).__name__)
            raise
        finally:
            self.ended.open()
        self.log.append("returned")
        return "held"

    async def Bounce(self, target: Any, method: str = "Ping") -> Any:
        self.seen.append(_here())
        return await getattr(target, method)()

    async def Raise(self, kind: str) -> None:
        self.log.append(kind)
        raise _RAISES[kind]()

    async def Same(self, other: Any) -> bool:
        return other is self

    async def Give(self) -> Any:
        return self

    async def Make(self) -> Any:
        return Nx()

    async def Unpicklable(self) -> Any:
        self.log.append("ran")
        return threading.Lock()

    async def Count(self, value: Any) -> int:
        self.log.append("ran")
        return 1

    async def Meet(self) -> int:
        self.met.append(comsim.current_thread_id())
        if len(self.met) == 2:
            self.both.open()
        await self.both.wait()  # each caller waits for the other: nothing is serialized
        return len(self.met)

    async def Test(self) -> int:
        return comsim.CoTestCancel()

    async def Relay(self, other: Any, target: Any) -> Any:
        # ``other`` arrived home: the NA object itself, called directly (no COM call)
        self.seen.append((type(other) is Nx, _here()))
        return await other.Bounce(target, "Wait")


class IPing(comsim.Interface):
    async def Ping(self) -> Any: ...
    async def Wait(self) -> str: ...
    async def Use(self, na: Any) -> Any: ...


class Server(comsim.CoClass, IPing):
    """An object of an STA or the MTA. ``Wait`` opens ``entered``, waits for ``gate`` (a
    non-COM wait), and opens ``returned`` as it returns."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = Gate()
        self.gate = Gate()
        self.returned = Gate()
        self.seen: list[Any] = []

    async def Ping(self) -> Any:
        self.seen.append(_here())
        return _here()

    async def Wait(self) -> str:
        self.seen.append(_here())
        self.entered.open()
        await self.gate.wait()
        self.returned.open()
        return "waited"

    async def Use(self, na: Any) -> Any:
        return {"proxy": isinstance(na, comsim.Proxy), "there": await na.Where(),
                "here": _here()}


async def publish(rt: comsim.Runtime, make: Callable[[], Any] = Nx) -> tuple[Any, int]:
    """An NA object, made in the NA, and its GIT cookie: ``(obj, cookie)``."""

    def made() -> tuple[Any, int]:
        obj = make()
        return obj, rt.git.RegisterInterfaceInGlobal(obj, INx)

    return await rt.nta.run(made)


async def serve(rt: comsim.Runtime, apt: Any) -> tuple[Any, int]:
    """A ``Server`` made in ``apt`` and its GIT cookie."""

    def made() -> tuple[Any, int]:
        obj = Server()
        return obj, rt.git.RegisterInterfaceInGlobal(obj, IPing)

    return await apt.run(made)


def get(rt: comsim.Runtime, cookie: int, iface: Any = INx) -> Any:
    """In the current apartment: the GIT's interface pointer for ``cookie``."""
    return rt.git.GetInterfaceFromGlobal(cookie, iface)


# --------------------------------------------------------------------------- who calls, nesting
@pytest.mark.asyncio
async def test_callback_into_the_sta_under_the_na_is_a_nested_call(rt: comsim.Runtime) -> None:
    # R5 R2 R16 R15: a unit of STA "s" calls an NA method that calls back into an object of
    # "s" itself. The NA code's wait is a COM wait of "s" (R5), so the callback is dispatched
    # nested on the same thread (R2), no deadlock; s's HandleInComingCall sees it as
    # CALLTYPE_NESTED (the waiting unit's causality id), from s's own thread; the callback
    # carries the causality id of the call into the NA (R15)
    s = await rt.create_sta("s")
    na, cookie = await publish(rt)
    asked: list[tuple[int, int, str]] = []

    class Filter(comsim.IMessageFilter):
        def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                               interface_info: Any) -> int:
            asked.append((call_type, caller_thread, interface_info[1]))
            return comsim.SERVERCALL_ISHANDLED

    async def unit() -> tuple[Any, Any]:
        comsim.CoRegisterMessageFilter(Filter())
        mine = Server()
        p = get(rt, cookie)
        return await p.Bounce(mine), mine.seen

    pinged, seen = await s.run(unit)
    (inside,) = na.seen
    assert inside["apartment"] == "NA" and inside["thread"] == s.thread_id
    assert pinged["apartment"] == "s" and pinged["thread"] == s.thread_id
    assert pinged["causality"] == inside["causality"] is not None
    assert seen == [pinged]
    assert asked == [(comsim.CALLTYPE_NESTED, s.thread_id, "Ping")]


@pytest.mark.asyncio
async def test_a_call_from_elsewhere_while_na_code_waits_is_toplevel_callpending(
        rt: comsim.Runtime) -> None:
    # R5 R2 R16: while a unit of "s" waits in NA code (an outgoing call to the MTA), a call
    # from STA "c" to an object of "s" is dispatched nested (a COM wait of "s"), and s's filter
    # sees CALLTYPE_TOPLEVEL_CALLPENDING (another causality) from c's thread. The waiting unit
    # resumes only after the nested call has ended (R2: last in, first out)
    s = await rt.create_sta("s")
    c = await rt.create_sta("c")
    _na, na_cookie = await publish(rt)
    slow, slow_cookie = await serve(rt, rt.mta)
    asked: list[tuple[int, int]] = []
    order: list[str] = []
    inner_entered, inner_gate = Gate(), comsim.ManualResetEvent()

    class Filter(comsim.IMessageFilter):
        def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                               interface_info: Any) -> int:
            asked.append((call_type, caller_thread))
            return comsim.SERVERCALL_ISHANDLED

    class Local(comsim.CoClass, IPing):
        async def Ping(self) -> Any:
            inner_entered.open()
            await inner_gate.Wait(0, comsim.INFINITE)  # a COM wait of "s": on top now
            order.append("nested ended")
            return "local"

    async def in_s() -> int:
        comsim.CoRegisterMessageFilter(Filter())
        p = get(rt, na_cookie)
        remote = get(rt, slow_cookie, IPing)
        result = await p.Bounce(remote, "Wait")  # NA -> MTA, a COM wait of "s"
        order.append("waiting unit resumed")
        return result

    async def make_local() -> int:
        return rt.git.RegisterInterfaceInGlobal(Local(), IPing)

    local_cookie = await s.run(make_local)

    async def from_c() -> Any:
        return await get(rt, local_cookie, IPing).Ping()

    async def open_and_wait() -> None:
        slow.gate.open()
        await slow.returned.wait()

    async with anyio.create_task_group() as tg:
        results: dict[str, Any] = {}

        async def run_in(name: str, apt: Any, fn: Any) -> None:
            results[name] = await apt.run(fn)

        tg.start_soon(run_in, "s", s, in_s)
        await slow.entered.wait()
        tg.start_soon(run_in, "c", c, from_c)
        await inner_entered.wait()
        await rt.mta.run(open_and_wait)  # the reply to the waiting unit is on its way
        await s.run(_noop)  # nested above the callback (a COM wait): the reply is in by now
        order.append("reply taken in")
        inner_gate.Signal()
    assert results["c"] == "local"
    assert results["s"] == "waited"
    assert order == ["reply taken in", "nested ended", "waiting unit resumed"]
    assert asked == [(comsim.CALLTYPE_TOPLEVEL_CALLPENDING, c.thread_id)]


async def _noop() -> None:
    return None


@pytest.mark.asyncio
async def test_na_calls_na_calls_mta_is_a_com_wait_of_the_sta_at_the_bottom(
        rt: comsim.Runtime) -> None:
    # R5 R2 R15 R11: "a" calls NA object 1, which calls NA object 2 directly (an NA object
    # passed into the NA arrives home as itself, R11), which calls the MTA. The thread is
    # a's throughout; the wait at the bottom is a COM wait of "a", so a queued unit of "a"
    # starts nested meanwhile, on a's thread; the causality id of a's call into the NA
    # reaches the MTA (R15)
    a = await rt.create_sta("a")
    one, one_cookie = await publish(rt)
    two, two_cookie = await publish(rt)
    srv, srv_cookie = await serve(rt, rt.mta)

    async def chain() -> Any:
        first = get(rt, one_cookie)
        return await first.Relay(get(rt, two_cookie), get(rt, srv_cookie, IPing))

    async with anyio.create_task_group() as tg:
        out: dict[str, Any] = {}

        async def go() -> None:
            out["r"] = await a.run(chain)

        tg.start_soon(go)
        await srv.entered.wait()
        probe = await a.run(_here_async)  # starts nested: a's thread is in a COM wait
        srv.gate.open()
    assert out["r"] == "waited"
    assert probe["apartment"] == "a" and probe["thread"] == a.thread_id
    ((is_object, in_one),) = one.seen
    (in_two,) = two.seen
    assert is_object
    assert in_one["apartment"] == in_two["apartment"] == "NA"
    assert in_one["thread"] == in_two["thread"] == a.thread_id
    (at_mta,) = srv.seen
    assert at_mta["causality"] == in_one["causality"] is not None


async def _here_async() -> dict[str, Any]:
    return _here()


@pytest.mark.asyncio
async def test_one_na_object_serves_two_threads_at_once(rt: comsim.Runtime) -> None:
    # R5 (R3): nothing is serialized in the NA: calls from two STAs run in the same NA object
    # at the same time, each on its caller's thread (each waits until the other has entered;
    # serialized, they would never meet)
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    na, cookie = await publish(rt)

    async def meet() -> int:
        return int(await get(rt, cookie).Meet())

    async with anyio.create_task_group() as tg:
        got: list[int] = []

        async def go(apt: Any) -> None:
            got.append(await apt.run(meet))

        tg.start_soon(go, a)
        tg.start_soon(go, b)
    assert got == [2, 2]
    assert sorted(na.met) == sorted([a.thread_id, b.thread_id])


# --------------------------------------------------------------------------- faults (R14)
@pytest.mark.parametrize("kind", sorted(_RAISES))
@pytest.mark.asyncio
async def test_every_exception_from_a_synchronous_na_call_is_a_com_outcome(
        rt: comsim.Runtime, kind: str) -> None:
    # R5 R14: an NA method that raises anything at all -- BaseExceptions included: SystemExit,
    # KeyboardInterrupt, a CancelledError of its own (no one cancelled the caller),
    # GeneratorExit, a BaseException subclass -- fails the call with RPC_E_SERVERFAULT, the
    # original chained; it never ends the caller's loop, and the caller is back in its own
    # apartment afterwards
    s = await rt.create_sta("s")
    na, cookie = await publish(rt)

    async def call() -> tuple[int, Any, Any, Any]:
        try:
            await get(rt, cookie).Raise(kind)
        except comsim.COMError as exc:
            return exc.hresult, type(exc.__cause__), _here(), await get(rt, cookie).Where()
        raise AssertionError("no error")

    code, cause, after, again = await s.run(call)
    assert code == hresult.RPC_E_SERVERFAULT
    assert cause is type(_RAISES[kind]())
    assert after["apartment"] == "s"
    assert again["apartment"] == "NA"  # the loop and the object still work
    assert na.log == [kind]


@pytest.mark.parametrize("kind", sorted(_RAISES))
@pytest.mark.asyncio
async def test_every_exception_from_a_begun_na_call_is_a_com_outcome(
        rt: comsim.Runtime, kind: str) -> None:
    # R5 (choice) R14 R22 R24: the same from a call begun with Begin_ (the method runs as a
    # task of the caller): Finish_ raises RPC_E_SERVERFAULT, outer.Signal() runs once, the
    # call object can begin again; nothing ends the loop or loses the call
    s = await rt.create_sta("s")
    na, cookie = await publish(rt)
    signals: list[str] = []

    class Outer:
        def Signal(self) -> None:
            signals.append("signal")

    async def call() -> tuple[int, Any, Any]:
        call = new_call(get(rt, cookie), AsyncINx, Outer())
        call.Begin_Raise(kind)
        try:
            await call.Finish_Raise()
        except comsim.COMError as exc:
            code, cause = exc.hresult, type(exc.__cause__)
        else:
            raise AssertionError("no error")
        call.Begin_Where()
        return code, cause, await call.Finish_Where()

    code, cause, again = await s.run(call)
    assert code == hresult.RPC_E_SERVERFAULT
    assert cause is type(_RAISES[kind]())
    assert again["apartment"] == "NA" and again["thread"] == s.thread_id
    assert signals == ["signal", "signal"]
    assert na.log == [kind]


@pytest.mark.asyncio
async def test_closing_a_synchronous_na_call_is_not_a_fault(rt: comsim.Runtime) -> None:
    # R14 R5 R17 (the fault boundary): a method's own GeneratorExit is a fault (above), but the
    # GeneratorExit that close() throws into a suspended call (a coroutine being closed, as a
    # pending task's is when it is destroyed) goes through: close() succeeds, the method's
    # clean-up runs, the caller is back in its apartment, and the call no longer counts as
    # running (a CoDisconnectObject then disconnects at once)
    s = await rt.create_sta("s")
    na, cookie = await publish(rt)

    async def unit() -> tuple[Any, int]:
        p = get(rt, cookie)
        coro = p.Hold()
        coro.send(None)  # the call runs until the method waits
        coro.close()
        here = _here()
        await rt.nta.run(comsim.CoDisconnectObject, na)
        return here, await hresult_of(p.Where())

    here, after = await s.run(unit)
    assert here["apartment"] == "s"
    assert na.log == ["GeneratorExit"] and na.ended.is_open
    assert after == hresult.RPC_E_DISCONNECTED


@pytest.mark.asyncio
async def test_na_results_and_arguments_that_do_not_pickle(rt: comsim.Runtime) -> None:
    # R5 R11: a result that pickle refuses fails the call with RPC_X_BAD_STUB_DATA, the NA
    # method having run; an argument that pickle refuses fails it before the method runs
    s = await rt.create_sta("s")
    na, cookie = await publish(rt)

    async def calls() -> tuple[int, list[str], int, list[str]]:
        p = get(rt, cookie)
        bad_result = await hresult_of(p.Unpicklable())
        ran_for_result = list(na.log)
        bad_argument = await hresult_of(p.Count(threading.Lock()))
        return bad_result, ran_for_result, bad_argument, list(na.log)

    bad_result, ran, bad_argument, ran_after = await s.run(calls)
    assert bad_result == hresult.RPC_X_BAD_STUB_DATA and ran == ["ran"]
    assert bad_argument == hresult.RPC_X_BAD_STUB_DATA and ran_after == ["ran"]


# --------------------------------------------------------------------------- marshalling, identity
@pytest.mark.asyncio
async def test_na_object_crosses_as_a_proxy_and_comes_home_as_itself(
        rt: comsim.Runtime) -> None:
    # R11 R8 R34 R5: an NA object passed into an STA's method arrives there as a proxy bound
    # to that STA, and a call through it runs on that STA's thread with the NA current; passed
    # into the NA it arrives home as the object itself; returned to its holder, it is the
    # holder's own proxy (R34: one manager per apartment: same IUnknown); a new NA object made
    # by an NA method reaches the caller as a proxy, and lives in the NA (R1)
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    _na, cookie = await publish(rt)
    _srv, srv_cookie = await serve(rt, b)

    async def in_a() -> dict[str, Any]:
        p = get(rt, cookie)
        given = await p.Give()
        made = await p.Make()
        return {
            "same": await p.Same(p),
            "given": given.QueryInterface(comsim.IUnknown) is p.QueryInterface(comsim.IUnknown),
            "used_in_b": await get(rt, srv_cookie, IPing).Use(p),
            "made_is_proxy": isinstance(made, comsim.Proxy),
            "made_lives": await made.Where(),
            "made_differs": made.QueryInterface(comsim.IUnknown)
            is not p.QueryInterface(comsim.IUnknown),
        }

    out = await a.run(in_a)
    assert out["same"] is True
    assert out["given"] is True
    used = out["used_in_b"]
    assert used["proxy"] is True
    assert used["there"]["apartment"] == "NA" and used["there"]["thread"] == b.thread_id
    assert used["here"]["apartment"] == "b"
    assert out["made_is_proxy"] is True and out["made_differs"] is True
    assert out["made_lives"]["apartment"] == "NA"
    assert out["made_lives"]["thread"] == a.thread_id


@pytest.mark.asyncio
async def test_an_sta_proxy_to_an_na_object_in_the_git(rt: comsim.Runtime) -> None:
    # R10 R34 R8 R12 R5: an STA's proxy to an NA object registered in the GIT: NA code gets the
    # object itself (at home), another STA a proxy bound to it, the registering STA its own
    # proxy again (one manager per apartment), code in no apartment CO_E_NOTINITIALIZED
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    na, cookie = await publish(rt)

    async def register() -> tuple[Any, int]:
        p = get(rt, cookie)
        return p, rt.git.RegisterInterfaceInGlobal(p, INx)

    p_a, again = await a.run(register)

    def in_na() -> Any:
        return get(rt, again)

    async def same_in_a() -> bool:
        return get(rt, again).QueryInterface(comsim.IUnknown) is p_a.QueryInterface(
            comsim.IUnknown)

    async def in_b() -> tuple[bool, bool, Any]:
        p = get(rt, again)
        wrong = await hresult_of(p_a.Where())  # a's proxy, used from b (R12)
        return isinstance(p, comsim.Proxy), wrong == hresult.RPC_E_WRONG_THREAD, await p.Where()

    assert await rt.nta.run(in_na) is na
    assert await a.run(same_in_a) is True
    is_proxy, wrong_thread, there = await b.run(in_b)
    assert is_proxy and wrong_thread
    assert there["apartment"] == "NA" and there["thread"] == b.thread_id
    with pytest.raises(comsim.COMError) as info:
        get(rt, again)
    assert info.value.hresult == hresult.CO_E_NOTINITIALIZED


@pytest.mark.asyncio
async def test_an_na_object_created_by_an_sta_goes_with_that_stas_shutdown(
        rt: comsim.Runtime) -> None:
    # R33 R7 R18 R5: CoCreateInstance of a "Neutral" class from an STA gives a proxy holding
    # the only strong reference; the STA's shutdown releases its proxy managers, so the NA
    # object's stub goes ("released") though the NA lives on
    s = await rt.create_sta("s")

    async def create() -> Any:
        p = await comsim.CoCreateInstance(Nx, INx)
        return await p.Where()

    with comsim.testing.capture_trace() as events:
        there = await s.run(create)
        assert there["apartment"] == "NA"
        assert events.events("stub.disconnected", object="Nx") == []
        await s.shutdown()
    assert [e["reason"] for e in events.events("stub.disconnected", object="Nx")] == [
        "released"]
    assert rt.nta.alive


# --------------------------------------------------------------------------- cancellation
class Coop(Nx):
    """An NA object that learns of a cancel only through CoTestCancel (R30)."""

    cancel_policy = "cooperative"

    async def Hold(self) -> str:
        self.log.append(f"before:{hresult.name(comsim.CoTestCancel())}")
        self.entered.open()
        await until_cancelled()
        self.log.append(f"after:{hresult.name(comsim.CoTestCancel())}")
        raise comsim.COMError(hresult.RPC_E_CALL_CANCELED, "noticed the cancel")


@pytest.mark.asyncio
async def test_cancel_a_begun_cooperative_na_call(rt: comsim.Runtime) -> None:
    # R5 R28 R29 R30: Begin_ on a cooperative NA object, then Cancel(INFINITE): the method,
    # running as a task of the caller, learns of it through CoTestCancel (pending before,
    # cancelled after) and answers RPC_E_CALL_CANCELED; Cancel gives S_OK, Finish_
    # RPC_E_CALL_CANCELED, the client's TestCancel tells the stages; traced as `running`
    s = await rt.create_sta("s")
    na, cookie = await publish(rt, Coop)

    async def use() -> tuple[int, int, int, int, int]:
        call = new_call(get(rt, cookie), AsyncINx)
        call.Begin_Hold()
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        before = cancel.TestCancel()
        await na.entered.wait()  # a task of ours: it runs while we wait (non-COM)
        hr_cancel = await cancel.Cancel(comsim.RPC_C_CANCEL_INFINITE_TIMEOUT)
        during = cancel.TestCancel()
        finish = await hresult_of(call.Finish_Hold())
        return before, hr_cancel, during, finish, cancel.TestCancel()

    with comsim.testing.capture_trace() as events:
        before, hr_cancel, during, finish, after = await s.run(use)
    assert before == hresult.RPC_S_CALLPENDING
    assert hr_cancel == hresult.S_OK
    assert during == hresult.RPC_E_CALL_CANCELED
    assert finish == hresult.RPC_E_CALL_CANCELED
    assert after == hresult.RPC_E_CALL_COMPLETE
    assert na.log == ["before:RPC_S_CALLPENDING", "after:RPC_E_CALL_CANCELED"]
    assert [e["stage"] for e in events.events("call.cancelled", method="Hold")] == ["running"]


@pytest.mark.asyncio
async def test_cancel_a_begun_na_call_before_its_task_ran(rt: comsim.Runtime) -> None:
    # R5 R28 R29 R7: Cancel(0) right after Begin_, before the task running the method has
    # taken a step: the call was never dispatched, so Cancel gives S_OK at once, the method
    # never runs, Finish_ gives RPC_E_CALL_CANCELED (stage `queued`), and the object passed in
    # its arguments -- whose only reference that was -- is released at once (R7: never
    # unpacked): its stub goes
    s = await rt.create_sta("s")
    na, cookie = await publish(rt)

    async def use() -> tuple[int, int, int, int]:
        arg = Server()  # marshalled for the first time by Begin_: its stub is made then
        call = new_call(get(rt, cookie), AsyncINx)
        call.Begin_Bounce(arg)
        held = int(arg.AddRef()) - 1
        arg.Release()
        hr_cancel = await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(0)
        after = int(arg.AddRef()) - 1
        arg.Release()
        return held, hr_cancel, after, await hresult_of(call.Finish_Bounce())

    with comsim.testing.capture_trace() as events:
        held, hr_cancel, after, finish = await s.run(use)
    assert (hr_cancel, finish) == (hresult.S_OK, hresult.RPC_E_CALL_CANCELED)
    assert na.seen == []
    assert [e["stage"] for e in events.events("call.cancelled", method="Bounce")] == ["queued"]
    assert (held, after) == (2, 1)  # the creator's, and the stub's until the cancel
    assert [e["reason"] for e in events.events("stub.disconnected", object="Server")] == [
        "released"]


@pytest.mark.asyncio
async def test_cotestcancel_in_an_na_method_is_the_innermost_calls(rt: comsim.Runtime) -> None:
    # R30 R5: inside an NA method called (synchronously) from a server method whose own call
    # has been cancelled, CoTestCancel answers for the innermost incoming call -- the NA call,
    # not cancelled; back in the server method it answers for that call again
    srv = await rt.create_sta("srv")
    cli = await rt.create_sta("cli")
    _na, cookie = await publish(rt)
    seen: dict[str, int] = {}
    entered = Gate()

    class Outer(comsim.CoClass, IPing):
        cancel_policy = "cooperative"

        async def Ping(self) -> Any:
            entered.open()
            await until_cancelled()
            seen["outer before"] = comsim.CoTestCancel()
            seen["inner"] = await get(rt, cookie).Test()
            seen["outer after"] = comsim.CoTestCancel()
            return "done"

    async def make() -> int:
        return rt.git.RegisterInterfaceInGlobal(Outer(), IPing)

    outer_cookie = await srv.run(make)

    async def use() -> int:
        call = new_call(get(rt, outer_cookie, IPing), comsim.async_interface(IPing))
        call.Begin_Ping()
        await entered.wait()
        return int(await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(
            comsim.RPC_C_CANCEL_INFINITE_TIMEOUT))

    assert await cli.run(use) == hresult.RPC_E_CALL_COMPLETE  # it replied with success
    assert seen == {"outer before": hresult.RPC_E_CALL_CANCELED,
                    "inner": hresult.RPC_S_CALLPENDING,
                    "outer after": hresult.RPC_E_CALL_CANCELED}


@pytest.mark.asyncio
async def test_cocancelcall_cancels_the_call_na_code_makes(rt: comsim.Runtime) -> None:
    # R31 R5: NA code keeps its thread's id, so CoEnableCallCancellation made inside the NA
    # counts for the STA's thread, and CoCancelCall(that thread) from code in no apartment
    # cancels the synchronous call the NA code is waiting in: it fails with
    # RPC_E_CALL_CANCELED. The STA's own count is the one the NA code raised
    s = await rt.create_sta("s")
    srv, srv_cookie = await serve(rt, rt.mta)

    async def in_na() -> tuple[int, int]:
        enabled = comsim.CoEnableCallCancellation()
        return enabled, await hresult_of(get(rt, srv_cookie, IPing).Wait())

    async def unit() -> tuple[tuple[int, int], int, int]:
        result = await rt.nta.run(in_na)
        return result, comsim.CoDisableCallCancellation(), comsim.CoDisableCallCancellation()

    async with anyio.create_task_group() as tg:
        out: dict[str, Any] = {}

        async def go() -> None:
            out["r"] = await s.run(unit)

        tg.start_soon(go)
        await srv.entered.wait()
        assert await comsim.CoCancelCall(s.thread_id, 0) == hresult.S_OK
    (enabled, call_hr), first, second = out["r"]
    assert enabled == hresult.S_OK
    assert call_hr == hresult.RPC_E_CALL_CANCELED
    assert (first, second) == (hresult.S_OK, hresult.CO_E_CANCEL_DISABLED)


@pytest.mark.asyncio
async def test_message_pending_cancelcall_cancels_the_na_codes_call(rt: comsim.Runtime) -> None:
    # R16 R5: NA code on an STA's thread waits in an outgoing call; a unit arriving asks the
    # STA's MessagePending (PENDINGTYPE_TOPLEVEL), which answers CANCELCALL: the NA code's
    # call fails with RPC_E_CALL_CANCELED, and the unit stays queued until it has
    s = await rt.create_sta("s")
    srv, srv_cookie = await serve(rt, rt.mta)
    asked: list[int] = []
    order: list[str] = []

    class Filter(comsim.IMessageFilter):
        def MessagePending(self, callee_thread: int, tick_count: int,
                           pending_type: int) -> int:
            asked.append(pending_type)
            return comsim.PENDINGMSG_CANCELCALL

    async def in_na() -> int:
        code = await hresult_of(get(rt, srv_cookie, IPing).Wait())
        order.append("call ended")
        return code

    async def unit() -> int:
        comsim.CoRegisterMessageFilter(Filter())
        return int(await rt.nta.run(in_na))

    async def probe() -> None:
        order.append("probe")

    async with anyio.create_task_group() as tg:
        out: dict[str, Any] = {}

        async def go() -> None:
            out["r"] = await s.run(unit)

        tg.start_soon(go)
        await srv.entered.wait()
        await s.run(probe)
    srv.gate.open()
    assert out["r"] == hresult.RPC_E_CALL_CANCELED
    assert asked == [comsim.PENDINGTYPE_TOPLEVEL]
    assert order == ["call ended", "probe"]


@pytest.mark.asyncio
async def test_a_cancel_scope_around_a_synchronous_na_call(rt: comsim.Runtime) -> None:
    # R32 R5 R17: a cancel scope around a synchronous call into the NA: the caller is released
    # (the method runs on its own task, so it is interrupted there: its clean-up runs), the
    # caller is back in its apartment, and the call no longer counts as running on the
    # object: a CoDisconnectObject afterwards disconnects it at once (RPC_E_DISCONNECTED, not
    # CO_E_OBJNOTCONNECTED as while a call runs)
    s = await rt.create_sta("s")
    na, cookie = await publish(rt)

    async def unit() -> tuple[bool, Any, int]:
        p = get(rt, cookie)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_once_inside() -> None:
                    await na.entered.wait()
                    scope.cancel()

                tg.start_soon(cancel_once_inside)
                await p.Hold()
        here = _here()
        await rt.nta.run(comsim.CoDisconnectObject, na)
        return scope.cancelled_caught, here, await hresult_of(p.Where())

    caught, here, after = await s.run(unit)
    assert caught
    assert here["apartment"] == "s"
    assert na.log == ["CancelledError"] and na.ended.is_open
    assert after == hresult.RPC_E_DISCONNECTED


@pytest.mark.asyncio
async def test_cancelling_finish_of_a_begun_na_call(rt: comsim.Runtime) -> None:
    # R32 R5 R30: cancelling the task that awaits Finish_ of a begun NA call cancels the call
    # (as Cancel(0): the interrupt-policy method is interrupted) and still does Finish_'s
    # clean-up: the call object begins again at once
    s = await rt.create_sta("s")
    na, cookie = await publish(rt)

    async def unit() -> tuple[bool, Any]:
        call = new_call(get(rt, cookie), AsyncINx)
        call.Begin_Hold()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_once_inside() -> None:
                    await na.entered.wait()
                    scope.cancel()

                tg.start_soon(cancel_once_inside)
                await call.Finish_Hold()
        call.Begin_Where()  # at once: no RPC_E_CALL_PENDING
        there = await call.Finish_Where()
        await na.ended.wait()
        return scope.cancelled_caught, there

    caught, there = await s.run(unit)
    assert caught
    assert there["apartment"] == "NA"
    assert na.log == ["CancelledError"]


# --------------------------------------------------------------------------- shutdown, disconnect
@pytest.mark.asyncio
async def test_the_sta_under_a_waiting_na_method_shuts_down(rt: comsim.Runtime) -> None:
    # R18 R5 R17: an STA shuts down while its unit is inside an NA method that waits (not a
    # COM wait): its task is cancelled through the NA method (whose clean-up runs), the run
    # caller gets RPC_E_DISCONNECTED, and the NA -- which ends only with the runtime -- goes
    # on serving the object from elsewhere; the cancelled call is no longer counted as running
    # on it (a CoDisconnectObject then disconnects it at once)
    s = await rt.create_sta("s")
    na, cookie = await publish(rt)

    async def hold() -> str:
        return str(await get(rt, cookie).Hold())

    async def from_mta() -> tuple[Any, int]:
        p = get(rt, cookie)
        there = await p.Where()
        await rt.nta.run(comsim.CoDisconnectObject, na)
        return there, await hresult_of(p.Where())

    async with anyio.create_task_group() as tg:
        out: dict[str, Any] = {}

        async def go() -> None:
            out["r"] = await hresult_of(s.run(hold))

        tg.start_soon(go)
        await na.entered.wait()
        await s.shutdown()
    assert out["r"] == hresult.RPC_E_DISCONNECTED
    assert na.log == ["CancelledError"]
    there, after = await rt.mta.run(from_mta)
    assert there["apartment"] == "NA"
    assert after == hresult.RPC_E_DISCONNECTED


@pytest.mark.asyncio
async def test_the_na_keeps_its_proxies_when_the_sta_under_its_code_shuts_down(
        rt: comsim.Runtime) -> None:
    # R18 R5 R7 R34: NA code on STA "s" waits in a call to the MTA through a proxy bound to
    # the NA; "s" shuts down: its call is abandoned (the server runs on, its reply is dropped)
    # and its run caller gets RPC_E_DISCONNECTED. The proxy is the NA's, not s's: NA code on
    # the MTA goes on using it
    s = await rt.create_sta("s")
    srv, srv_cookie = await serve(rt, rt.mta)
    box: dict[str, Any] = {}

    def bind() -> None:
        box["p"] = get(rt, srv_cookie, IPing)

    await rt.nta.run(bind)

    async def in_na() -> str:
        return str(await box["p"].Wait())

    async def later() -> Any:
        return await box["p"].Ping()

    async def open_and_wait() -> None:
        srv.gate.open()
        await srv.returned.wait()

    async with anyio.create_task_group() as tg:
        out: dict[str, Any] = {}

        async def go() -> None:
            out["r"] = await hresult_of(s.run(rt.nta.run, in_na))

        tg.start_soon(go)
        await srv.entered.wait()
        await s.shutdown()
    assert out["r"] == hresult.RPC_E_DISCONNECTED
    await rt.mta.run(open_and_wait)  # the abandoned call's server ran on
    pinged = await rt.mta.run(rt.nta.run, later)
    assert pinged["apartment"] == "MTA"


@pytest.mark.asyncio
async def test_na_clean_up_call_while_the_sta_under_it_shuts_down(rt: comsim.Runtime) -> None:
    # R18 R5 R12: an NA method's clean-up (its `finally`) makes a call through a proxy bound to
    # the NA while the STA under it is shutting down (the teardown cancelled its task and
    # waits for it). It would never get its reply (the STA takes in no more, R18): it fails
    # at once, nothing sent, and the shutdown and the runtime end (before: all three hung)
    s = await rt.create_sta("s")
    _srv, srv_cookie = await serve(rt, rt.mta)
    entered = Gate()
    outcome: list[Any] = []

    class Tidy(Nx):
        async def Hold(self) -> str:
            remote = get(rt, srv_cookie, IPing)
            entered.open()
            try:
                await self.gate.wait()
            finally:
                outcome.append("hung")  # replaced once the clean-up call has ended
                with anyio.move_on_after(_BOUND):  # a bound, so that a hang fails the test
                    outcome[0] = await hresult_of(remote.Ping())  # clean-up, then the end
            return "held"

    _na, cookie = await publish(rt, Tidy)

    async def hold() -> str:
        return str(await get(rt, cookie).Hold())

    async with anyio.create_task_group() as tg:
        out: dict[str, Any] = {}

        async def go() -> None:
            out["r"] = await hresult_of(s.run(hold))

        tg.start_soon(go)
        await entered.wait()
        await s.shutdown()
    assert out["r"] == hresult.RPC_E_DISCONNECTED
    assert outcome == [hresult.RPC_E_DISCONNECTED]


@pytest.mark.asyncio
async def test_codisconnectobject_on_an_na_object_while_a_call_runs(rt: comsim.Runtime) -> None:
    # R17 R5: CoDisconnectObject (from NA code: the object's apartment) while a call into the
    # NA object runs: the running call finishes and gives its result; meanwhile new calls fail
    # with CO_E_OBJNOTCONNECTED; once it has finished, RPC_E_DISCONNECTED; marshalling the
    # object again makes a new stub that works
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    na, cookie = await publish(rt)

    async def hold() -> str:
        return str(await get(rt, cookie).Hold())

    async def take() -> Any:
        return get(rt, cookie)

    p_b = await b.run(take)

    async def ping() -> int:
        return await hresult_of(p_b.Where())

    def wrong_apartment() -> int:
        try:
            comsim.CoDisconnectObject(na)
        except comsim.COMError as exc:
            return exc.hresult
        return hresult.S_OK

    async with anyio.create_task_group() as tg:
        out: dict[str, Any] = {}

        async def go() -> None:
            out["r"] = await a.run(hold)

        tg.start_soon(go)
        await na.entered.wait()
        assert await b.run(wrong_apartment) == hresult.RPC_E_WRONG_THREAD
        await rt.nta.run(comsim.CoDisconnectObject, na)
        assert await b.run(ping) == hresult.CO_E_OBJNOTCONNECTED
        na.gate.open()
    assert out["r"] == "held"
    assert await b.run(ping) == hresult.RPC_E_DISCONNECTED

    def again() -> comsim.MarshalStream:
        return comsim.marshal_interface(na, INx)

    stream = await rt.nta.run(again)

    async def fresh() -> Any:
        return await comsim.unmarshal_interface(stream).Where()

    assert (await b.run(fresh))["apartment"] == "NA"


@pytest.mark.asyncio
async def test_the_runtime_ends_with_an_na_call_in_flight_from_no_apartment() -> None:
    # R18 R5: code in no apartment, in the NA, waits in a call to an MTA object when the
    # runtime ends: the MTA's shutdown fails the call in flight with RPC_E_DISCONNECTED (its
    # reply comes to the caller's own loop); nothing hangs and no task of comsim is left
    det = isinstance(asyncio.get_running_loop(), comsim.testing.VirtualTimeLoop)
    outcome: list[int] = []
    async with comsim.Runtime(deterministic=det, seed=0 if det else None) as rt:
        srv, srv_cookie = await serve(rt, rt.mta)

        async def in_na() -> None:
            outcome.append(await hresult_of(get(rt, srv_cookie, IPing).Wait()))

        caller = asyncio.ensure_future(rt.nta.run(in_na))
        await srv.entered.wait()
    await caller
    assert outcome == [hresult.RPC_E_DISCONNECTED]
    me = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not me and not t.done()] == []


# ------------------------------------------------------------------ one NA call object, two threads
async def _begin_in_na(rt: comsim.Runtime, srv_cookie: int, box: dict[str, Any]) -> None:
    """NA code: a call object of a proxy bound to the NA; Begin_Wait on it, kept in ``box``."""
    call = new_call(get(rt, srv_cookie, IPing), comsim.async_interface(IPing))
    call.Begin_Wait()
    box["call"] = call


async def _finish_on_another_thread(rt: comsim.Runtime, cancel: bool) -> dict[str, Any]:
    """NA code on STA "a" begins ``Wait`` on an MTA object; NA code on STA "b" then waits in
    Finish_ (or first in ``Cancel(INFINITE)``), and only then is the server let go. Gives what
    "b" saw: the outcomes, and the OS threads its NA code ran on before and after."""
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    srv, srv_cookie = await serve(rt, rt.mta)
    box: dict[str, Any] = {}
    await a.run(rt.nta.run, _begin_in_na, rt, srv_cookie, box)
    waiting = Gate()

    async def in_na_on_b() -> dict[str, Any]:
        seen: dict[str, Any] = {"before": threading.get_ident()}
        call = box["call"]

        async def finish() -> None:
            if cancel:
                seen["cancel"] = await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(
                    comsim.RPC_C_CANCEL_INFINITE_TIMEOUT)
            try:
                seen["finish"] = await call.Finish_Wait()
            except comsim.COMError as exc:
                seen["finish"] = exc.hresult
            seen["after"] = threading.get_ident()

        async def then_say_so() -> None:
            waiting.open()  # runs once ``finish`` waits: its task took its step first

        async with anyio.create_task_group() as tg:
            tg.start_soon(finish)
            tg.start_soon(then_say_so)
        return seen

    async with anyio.create_task_group() as tg:
        out: dict[str, Any] = {}

        async def go() -> None:
            out["r"] = await b.run(rt.nta.run, in_na_on_b)

        tg.start_soon(go)
        await waiting.wait()
        if not cancel:
            srv.gate.open()
    return out["r"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("cancel", [False, True])
@pytest.mark.asyncio
async def test_a_call_begun_by_na_code_on_one_sta_ended_by_na_code_on_another(
        rt: comsim.Runtime, cancel: bool) -> None:
    # R5 R12 R22 R28 R34 R2: a call object of a proxy bound to the NA is usable by NA code on
    # any thread, as its proxy is. NA code on STA "a" begins a call; NA code on STA "b"
    # finishes it (Finish_ waits, a COM wait of b, and gives the result) or cancels it first
    # (the interrupt-policy server is interrupted: Cancel gives S_OK, Finish_
    # RPC_E_CALL_CANCELED), and goes on on b's own thread. On the deterministic runtime every
    # apartment shares one loop; on the threaded one "a" and "b" are two OS threads. Before:
    # the reply woke b's task on a's OS thread while b's thread ran b's loop, which corrupted
    # the interpreter (a SystemError in a later ast.parse); and Cancel made its grace future
    # on a's loop and awaited it from b's ("attached to a different loop")
    seen = await _finish_on_another_thread(rt, cancel)
    if cancel:
        assert (seen["cancel"], seen["finish"]) == (hresult.S_OK, hresult.RPC_E_CALL_CANCELED)
    else:
        assert seen["finish"] == "waited"
    assert seen["after"] == seen["before"]


@pytest.mark.asyncio
async def test_finish_by_na_code_after_the_sta_that_began_the_call_shut_down(
        rt: comsim.Runtime) -> None:
    # R18 R5 R22: NA code on STA "a" begins a call and leaves its call object to NA code on
    # "b"; "a" shuts down before the reply, which it would refuse: the call ends with "a"
    # (RPC_E_DISCONNECTED at the end of its teardown) and Finish_ on "b" gives that at once
    # (before: it waited for ever)
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")
    srv, srv_cookie = await serve(rt, rt.mta)
    box: dict[str, Any] = {}
    await a.run(rt.nta.run, _begin_in_na, rt, srv_cookie, box)
    await srv.entered.wait()
    await a.shutdown()

    async def open_and_wait() -> None:
        srv.gate.open()
        await srv.returned.wait()

    await rt.mta.run(open_and_wait)

    async def finish() -> Any:
        with anyio.move_on_after(_BOUND):
            try:
                return await box["call"].Finish_Wait()
            except comsim.COMError as exc:
                return exc.hresult
        return "hung"

    assert await b.run(rt.nta.run, finish) == hresult.RPC_E_DISCONNECTED



# --------------------------------------------------------------------------- code in no apartment
@pytest.mark.asyncio
async def test_cocancelcall_from_the_same_os_thread_cancels_na_code_entered_from_outside(
        rt: comsim.Runtime) -> None:
    # R31 R5: code in no apartment runs on one simulated thread per OS thread, and NA code it
    # enters keeps that thread. NA code so entered enables cancellation and waits in a call to
    # the MTA; CoCancelCall(0) from another task of the same OS thread (no apartment) names
    # that very thread: the call fails with RPC_E_CALL_CANCELED
    srv, srv_cookie = await serve(rt, rt.mta)
    outcome: list[int] = []

    async def in_na() -> None:
        comsim.CoEnableCallCancellation()
        try:
            outcome.append(await hresult_of(get(rt, srv_cookie, IPing).Wait()))
        finally:
            comsim.CoDisableCallCancellation()

    async with anyio.create_task_group() as tg:
        tg.start_soon(rt.nta.run, in_na)
        await srv.entered.wait()
        assert await comsim.CoCancelCall(0, 0) == hresult.S_OK
    assert outcome == [hresult.RPC_E_CALL_CANCELED]


@pytest.mark.asyncio
async def test_the_nas_own_proxy_is_one_for_every_thread(rt: comsim.Runtime) -> None:
    # R34 R5 R10: the NA holds one proxy manager per object, whatever thread its code runs on:
    # the GIT gives NA code on an STA, on the MTA and entered from no apartment the same proxy
    a = await rt.create_sta("a")
    _srv, srv_cookie = await serve(rt, a)

    def take() -> Any:
        return get(rt, srv_cookie, IPing)

    on_a = await a.run(rt.nta.run, take)
    on_mta = await rt.mta.run(rt.nta.run, take)
    outside = await rt.nta.run(take)
    assert isinstance(on_a, comsim.Proxy)
    assert on_a is on_mta is outside

    def unknowns() -> bool:
        return on_a.QueryInterface(comsim.IUnknown) is take().QueryInterface(comsim.IUnknown)

    assert await a.run(rt.nta.run, unknowns) is True
    with pytest.raises(comsim.COMError) as info:
        on_a.QueryInterface(comsim.IUnknown)  # from no apartment (R12)
    assert info.value.hresult == hresult.CO_E_NOTINITIALIZED
