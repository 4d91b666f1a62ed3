"""A call object against a reference model of R21-R28, driven by Hypothesis.

Hypothesis draws a list of steps (and a runtime seed); one example is one
``comsim.testing.run(...)`` on the deterministic runtime, where a client unit in an STA
interprets the steps against a real call object on a proxy to a server STA, and a small model
written here from the rules says what each step must give:

- ``begin``: ``Begin_Work`` -- S_OK from idle, else RPC_E_CALL_PENDING, whatever happened in
  between (R21);
- ``wait``: ``ISynchronize.Wait(0, 0)`` -- S_OK once the call has ended (completed or cancelled),
  RPC_S_CALLPENDING otherwise; clear before the first Begin_ and after Finish_ (R23);
- ``cancel``: ``Cancel(0)`` -- RPC_E_CALL_COMPLETE with no call or once the reply is in,
  RPC_E_CALL_CANCELED if already cancelled, else S_OK and the call ends cancelled (R28);
- ``finish``: ``Finish_Work`` -- RPC_E_CALL_COMPLETE with no call; waits while the call is
  pending (checked: still waiting after a while, then the server is let finish); the result
  once completed; RPC_E_CALL_CANCELED once cancelled; the object is idle afterwards (R22);
- ``test_cancel``: ``TestCancel()`` -- RPC_S_CALLPENDING while pending, RPC_E_CALL_CANCELED
  from the cancel until Finish_, RPC_E_CALL_COMPLETE otherwise (R28);
- ``release``: release every reference without Finish_; it raises nothing and does not cancel
  (R25); the test goes on with a fresh call object;
- ``server_finish``: signal the gate every server method waits on, let virtual time run; a
  pending call's reply is then in (completed);
- ``settle``: let virtual time run without opening the gates: requests get dispatched and the
  server blocks, so a later ``cancel`` meets a running server instead of a queued request
  (R29's ``running`` stage instead of ``queued``); nothing changes in the model.

The server methods block on a ``ManualResetEvent`` gate, so nothing completes unless a step
says so: the model needs no knowledge of timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

import comsim
from comsim import hresult as hr
from comsim.testing import capture_trace, run

INFINITE = comsim.INFINITE
REAL_LIMIT = 1.0  # seconds of real time one example may take (they take milliseconds)
T = TypeVar("T")
OPS = ["begin", "begin", "wait", "cancel", "finish", "test_cancel", "release", "server_finish",
       "settle"]


class IWork(comsim.Interface):
    async def Work(self, tag: int, gate: Any) -> int: ...


AsyncIWork = comsim.async_interface(IWork)


def result_of(tag: int) -> int:
    return tag * 10 + 7


class Worker(comsim.CoClass, IWork):
    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log

    async def Work(self, tag: int, gate: Any) -> int:
        self.log.append(("start", tag))
        await gate.Wait(0, INFINITE)
        self.log.append(("done", tag))
        return result_of(tag)


# --------------------------------------------------------------------------- the model
class Model:
    """What R21-R28 say a call object gives. States: idle, pending, completed, cancelled."""

    def __init__(self) -> None:
        self.state = "idle"
        self.tag: int | None = None

    def begin(self, tag: int) -> tuple[str, int]:  # R21
        if self.state != "idle":
            return ("raise", hr.RPC_E_CALL_PENDING)
        self.state, self.tag = "pending", tag
        return ("ok", hr.S_OK)

    def wait(self) -> tuple[str, int]:  # R23
        ended = self.state in ("completed", "cancelled")
        return ("ok", hr.S_OK if ended else hr.RPC_S_CALLPENDING)

    def cancel(self) -> tuple[str, int]:  # R28
        if self.state in ("idle", "completed"):
            return ("ok", hr.RPC_E_CALL_COMPLETE)
        if self.state == "cancelled":
            return ("ok", hr.RPC_E_CALL_CANCELED)
        self.state = "cancelled"  # pending: Cancel(0) ends it cancelled at once, S_OK
        return ("ok", hr.S_OK)

    def test_cancel(self) -> tuple[str, int]:  # R28
        return ("ok", {"pending": hr.RPC_S_CALLPENDING,
                       "cancelled": hr.RPC_E_CALL_CANCELED}.get(self.state,
                                                               hr.RPC_E_CALL_COMPLETE))

    def finish(self) -> tuple[str, int]:  # R22
        state, tag = self.state, self.tag
        self.state, self.tag = "idle", None
        if state == "idle":
            return ("raise", hr.RPC_E_CALL_COMPLETE)
        if state == "cancelled":
            return ("raise", hr.RPC_E_CALL_CANCELED)
        assert tag is not None
        return ("ok", result_of(tag))  # completed, or pending: waits, then the result

    def server_finish(self) -> None:
        if self.state == "pending":
            self.state = "completed"

    def release(self) -> int | None:  # R25: a fresh call object is idle
        tag = self.tag if self.state == "pending" else None
        self.state, self.tag = "idle", None
        return tag


# --------------------------------------------------------------------------- the driver
def run_guarded(main: Callable[[], Awaitable[T]], what: Any) -> T:
    """``comsim.testing.run(main)``, failing fast instead of hanging: a watchdog thread stops
    the loop after ``REAL_LIMIT`` real seconds. On the virtual-time loop a hang is either a
    deadlock, or a livelock where something is always ready to run, so virtual time never
    advances and no time-out inside the program can fire (nor, reliably, pytest-timeout)."""
    loops: list[asyncio.AbstractEventLoop] = []
    finished = threading.Event()
    fired = threading.Event()

    async def wrapper() -> T:
        loops.append(asyncio.get_running_loop())
        return await main()

    def watchdog() -> None:
        if not finished.wait(REAL_LIMIT) and loops:
            fired.set()
            loops[0].call_soon_threadsafe(loops[0].stop)

    threading.Thread(target=watchdog, name="test-model-watchdog", daemon=True).start()
    try:
        return run(wrapper)
    except BaseException as exc:
        if fired.is_set():
            raise AssertionError(
                f"{what}: no end after {REAL_LIMIT} s of real time (virtual time "
                f"{loops[0].time():.3f}): a deadlock, or a livelock that freezes virtual "
                "time") from exc
        raise
    finally:
        finished.set()


async def _status(aw: Any) -> tuple[str, Any]:
    try:
        return ("ok", await aw)
    except comsim.COMError as exc:
        return ("raise", exc.hresult)


def _sync_status(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(*args))
    except comsim.COMError as exc:
        return ("raise", exc.hresult)


class Client:
    """The call object under test and its two facets (QueryInterface shares one count, R25)."""

    def __init__(self, proxy: Any) -> None:
        factory = proxy.QueryInterface(comsim.ICallFactory)
        self.call = factory.CreateCall(AsyncIWork)
        factory.Release()
        self.sync = self.call.QueryInterface(comsim.ISynchronize)
        self.cancel = self.call.QueryInterface(comsim.ICancelMethodCalls)

    def release(self) -> list[int]:
        return [self.sync.Release(), self.cancel.Release(), self.call.Release()]


def check_steps(steps: list[str], seed: int) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        async with comsim.Runtime(deterministic=True, seed=seed) as rt:
            srv = await rt.create_sta("srv")
            cli = await rt.create_sta("cli")
            log: list[Any] = []

            async def make() -> comsim.MarshalStream:
                return comsim.marshal_interface(Worker(log), IWork)

            stream = await srv.run(make)
            gates: list[comsim.ManualResetEvent] = []
            released_pending: list[int] = []
            completed: list[int] = []
            transcript: list[Any] = []

            def open_gates() -> None:
                for g in gates:
                    g.Signal()

            async def interpret() -> None:
                proxy = comsim.unmarshal_interface(stream)
                model = Model()
                client = Client(proxy)
                for i, op in enumerate(steps):
                    want: tuple[str, Any]
                    got: tuple[str, Any]
                    if op == "begin":
                        gate = comsim.ManualResetEvent()
                        want = model.begin(i)
                        got = _sync_status(client.call.Begin_Work, i, gate)
                        if got == ("ok", hr.S_OK):
                            gates.append(gate)
                    elif op == "wait":
                        want = model.wait()
                        got = await _status(client.sync.Wait(0, 0))
                    elif op == "cancel":
                        want = model.cancel()
                        got = await _status(client.cancel.Cancel(0))
                    elif op == "test_cancel":
                        want = model.test_cancel()
                        got = _sync_status(client.cancel.TestCancel)
                    elif op == "finish":
                        was_pending = model.state == "pending"
                        want = model.finish()
                        if want[0] == "ok":
                            completed.append((want[1] - 7) // 10)
                        if was_pending:  # R22: Finish_ waits for the call to end
                            done: list[Any] = []

                            async def fin(out: list[Any] = done, c: Client = client) -> None:
                                out.append(await _status(c.call.Finish_Work()))

                            async with anyio.create_task_group() as tg:
                                tg.start_soon(fin)
                                await anyio.sleep(0.5)
                                assert done == [], (
                                    f"step {i}: Finish_ returned {done} while the server "
                                    f"was still blocked; transcript {transcript}")
                                open_gates()
                            got = done[0]
                        else:
                            got = await _status(client.call.Finish_Work())
                    elif op == "release":
                        tag = model.release()
                        if tag is not None:
                            released_pending.append(tag)
                        counts = client.release()
                        assert counts[-1] == 0, f"step {i}: refs left {counts}"
                        client = Client(proxy)
                        want = got = ("ok", None)
                    elif op == "settle":
                        await anyio.sleep(0.25)
                        want = got = ("ok", None)
                    elif op == "server_finish":
                        open_gates()
                        await anyio.sleep(1)
                        model.server_finish()
                        want = got = ("ok", None)
                    else:  # pragma: no cover
                        raise AssertionError(op)
                    transcript.append((op, got))
                    assert got == want, (
                        f"step {i} ({op}): comsim gave {got}, the model {want}, in state "
                        f"{model.state}; transcript {transcript}")
                client.release()

            with capture_trace() as events:
                await cli.run(interpret)
                open_gates()
                await anyio.sleep(1)  # every call in flight lands

            # R25: a call released while pending was not cancelled: the server ran it to its
            # end, and its reply was dropped
            for tag in released_pending:
                assert ("done", tag) in log, (tag, log, transcript)
            dropped = {e["call_id"] for e in events.events("call.reply_dropped")}
            sent = {e["call_id"] for e in events.events("call.sent")}
            assert len(dropped) >= len(released_pending)
            assert dropped <= sent
            for tag in completed:
                assert ("done", tag) in log, (tag, log, transcript)
            # every method ran at most once, and never unasked
            starts = [t for what, t in log if what == "start"]
            assert len(starts) == len(set(starts))
            assert len(starts) <= len(gates)
            return list(events)

    return run_guarded(main, f"steps {steps} under seed {seed}")


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.sampled_from(OPS), min_size=1, max_size=24),
       seed=st.integers(min_value=0, max_value=10_000))
def test_call_object_follows_the_model(steps: list[str], seed: int) -> None:
    # R21 R22 R23 R25 R28
    check_steps(steps, seed)


def test_model_walkthrough() -> None:  # R21 R22 R23 R25 R28 R29
    """A fixed sequence through every state, so a failure here reads without Hypothesis."""
    events = check_steps(
        ["wait", "test_cancel", "cancel", "finish",
         "begin", "begin", "wait", "test_cancel", "server_finish", "wait", "cancel",
         "test_cancel", "begin", "finish", "wait", "finish",
         "begin", "cancel", "cancel", "test_cancel", "wait", "begin", "finish",
         "begin", "settle", "cancel", "wait", "test_cancel", "finish", "settle",
         "begin", "release", "begin", "server_finish", "cancel", "finish",
         "begin", "settle", "release", "begin", "finish"], seed=3)
    # the cancels met the request still queued, then the server running (R29)
    assert [e["stage"] for e in events if e["event"] == "call.cancelled"] == [
        "queued", "running"]


def test_model_new_call_while_an_interrupted_one_unwinds() -> None:  # R22 R28 R30 R2
    """Hypothesis's shrunk find: a call cancelled while its server method waits in the server
    STA (interrupt policy), then a new call, which the STA starts nested above the interrupted
    method (its COM wait lets units in, R2); the interrupted method can only unwind once the
    nested one has ended (LIFO). Finish_ of the new call must still wait, then give the result
    once the server is let finish. (A regression test: anyio's scope used to re-cancel the
    interrupted method's COM wait on every loop cycle, a busy loop that froze virtual time.)"""
    for seed in range(6):  # the seed decides whether the cancel or the new call lands first
        events = check_steps(["begin", "settle", "cancel", "finish", "begin", "finish"], seed)
        assert [e["stage"] for e in events if e["event"] == "call.cancelled"] == ["running"]
