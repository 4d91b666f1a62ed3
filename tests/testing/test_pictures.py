"""Pictures of a trace: ``hresult_name`` on events, ``Trace.to_text()``, ``to_mermaid()`` and
``to_chrome_trace()``, from real scenarios on the deterministic runtime (virtual time, seeded)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio

import comsim
from comsim import hresult as hr
from comsim._runtime import trace as rt_trace
from comsim.testing import Trace, capture_trace, run
from comsim.testing._pictures import OUTSIDE, mermaid_text


class IWork(comsim.Interface):
    async def Work(self, seconds: float) -> str: ...


class Worker(comsim.CoClass, IWork):
    cancel_policy = "interrupt"

    async def Work(self, seconds: float) -> str:
        await anyio.sleep(seconds)
        return "done"


AsyncIWork = comsim.async_interface(IWork)


class Rejecting(comsim.IMessageFilter):
    """The server's filter rejects every call; the caller's gives up at once (R16)."""

    def HandleInComingCall(self, call_type, caller_thread, tick_count, interface_info):  # type: ignore[no-untyped-def]
        return comsim.SERVERCALL_REJECTED

    def RetryRejectedCall(self, callee_thread, tick_count, reject_type):  # type: ignore[no-untyped-def]
        return -1

    def MessagePending(self, callee_thread, tick_count, pending_type):  # type: ignore[no-untyped-def]
        return comsim.PENDINGMSG_WAITDEFPROCESS


async def _two_stas(rt: comsim.Runtime) -> tuple[Any, Any, comsim.MarshalStream]:
    ui, worker = await rt.create_sta("ui"), await rt.create_sta("worker")

    async def serve() -> comsim.MarshalStream:
        return comsim.marshal_interface(Worker(), IWork)

    return ui, worker, await worker.run(serve)


def sync_call() -> Trace:
    """ui calls worker's Work(2 ms), synchronously."""
    async def main() -> Trace:
        with capture_trace() as events:
            async with comsim.Runtime(deterministic=True, seed=1) as rt:
                ui, _worker, stream = await _two_stas(rt)

                async def client() -> str:
                    result: str = await comsim.unmarshal_interface(stream, IWork).Work(0.002)
                    return result

                assert await ui.run(client) == "done"
        return events

    return run(main)


def cancelled_call(stage: str) -> Trace:
    """The seed procedure (Begin_Work, Cancel(0), Finish_Work), arranged so that the cancel
    finds the call in R29's ``stage``."""
    async def main() -> Trace:
        with capture_trace() as events:
            async with comsim.Runtime(deterministic=True, seed=1) as rt:
                ui, worker, stream = await _two_stas(rt)
                if stage == "finished":  # the reply takes 5 ms back: the cancel overtakes it
                    rt.set_latency(0.005, source="worker", target="ui")
                busy = None
                if stage == "queued":  # the worker STA is held: the request waits in line
                    started = comsim.ManualResetEvent()

                    async def keep_busy() -> None:  # a non-COM wait: no call gets in
                        started.Signal()
                        await anyio.sleep(0.004)

                    busy = asyncio.ensure_future(worker.run(keep_busy))
                    await started.Wait(0, comsim.INFINITE)

                async def client() -> int:
                    proxy = comsim.unmarshal_interface(stream, IWork)
                    factory = proxy.QueryInterface(comsim.ICallFactory)
                    call: Any = factory.CreateCall(AsyncIWork)
                    factory.Release()
                    call.Begin_Work(0.002 if stage == "finished" else 0.010)
                    await anyio.sleep({"queued": 0.001, "running": 0.001, "finished": 0.003}[
                        stage])
                    cancel = call.QueryInterface(comsim.ICancelMethodCalls)
                    code: int = await cancel.Cancel(0)
                    cancel.Release()
                    try:
                        await call.Finish_Work()
                    except comsim.COMError as exc:
                        assert exc.hresult == hr.RPC_E_CALL_CANCELED
                    call.Release()
                    return code

                assert await ui.run(client) == hr.S_OK
                if busy is not None:
                    await busy
                await anyio.sleep(0.010)  # let the late reply land
        return events

    return run(main)


def rejected_call() -> Trace:
    async def main() -> Trace:
        with capture_trace() as events:
            async with comsim.Runtime(deterministic=True, seed=1) as rt:
                ui, worker, stream = await _two_stas(rt)

                async def install() -> None:
                    comsim.CoRegisterMessageFilter(Rejecting())

                await worker.run(install)
                await ui.run(install)

                async def client() -> int:
                    try:
                        await comsim.unmarshal_interface(stream, IWork).Work(0.001)
                    except comsim.COMError as exc:
                        return exc.hresult
                    return hr.S_OK

                assert await ui.run(client) == hr.RPC_E_CALL_REJECTED
        return events

    return run(main)


# --------------------------------------------------------------------------- a validator
_REQUIRED = {  # the Trace Event Format's fields, per phase
    "X": {"name", "ph", "ts", "pid", "tid", "dur"},
    "s": {"name", "ph", "ts", "pid", "tid", "id"},
    "f": {"name", "ph", "ts", "pid", "tid", "id"},
    "i": {"name", "ph", "ts", "pid", "tid", "s"},
    "M": {"name", "ph", "pid", "args"},
}


def validate(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Check ``doc`` against the format (JSON object form); give its events."""
    assert set(doc) == {"traceEvents", "displayTimeUnit"} and doc["displayTimeUnit"] == "ms"
    assert json.loads(json.dumps(doc)) == doc  # plain JSON: dumps, and nothing lost
    events: list[dict[str, Any]] = doc["traceEvents"]
    for ev in events:
        assert ev["ph"] in _REQUIRED, ev
        missing = _REQUIRED[ev["ph"]] - set(ev)
        assert not missing, (missing, ev)
        assert isinstance(ev["name"], str) and isinstance(ev["pid"], int)
        assert isinstance(ev.get("tid", 0), int)
        if "args" in ev:
            assert isinstance(ev["args"], dict)
        if ev["ph"] != "M":
            assert isinstance(ev["ts"], (int, float)) and ev["ts"] >= 0
        if ev["ph"] == "X":
            assert ev["dur"] >= 0
        if ev["ph"] == "i":
            assert ev["s"] in ("g", "p", "t")
        if ev["ph"] == "f":
            assert ev.get("bp") == "e"
    # flows: each id starts once and finishes once, no sooner
    starts = {ev["id"]: ev for ev in events if ev["ph"] == "s"}
    ends = {ev["id"]: ev for ev in events if ev["ph"] == "f"}
    assert len(starts) == sum(ev["ph"] == "s" for ev in events)
    assert starts.keys() == ends.keys()
    for fid, start in starts.items():
        assert ends[fid]["ts"] >= start["ts"]
    return events


def tracks(events: list[dict[str, Any]]) -> dict[str, int]:
    return {ev["args"]["name"]: ev["tid"] for ev in events
            if ev["ph"] == "M" and ev["name"] == "thread_name"}


def _at(events: Trace, name: str) -> float:
    return float(events.events(name)[0]["t"]) * 1e6


# --------------------------------------------------------------------------- hresult_name
def test_events_with_an_hresult_carry_its_name() -> None:
    events = sync_call()
    with_code = [e for e in events if "hresult" in e]
    assert {e["event"] for e in with_code} == {"call.returned", "call.completed"}
    for e in with_code:
        assert e["hresult"] == hr.S_OK and e["hresult_name"] == "S_OK"
    assert all("hresult_name" not in e for e in events if "hresult" not in e)
    cancelled = cancelled_call("running").events("call.cancelled")[0]
    assert cancelled["hresult"] == hr.RPC_E_CALL_CANCELED < 0  # the signed int
    assert cancelled["hresult_name"] == "RPC_E_CALL_CANCELED"


def test_emit_names_the_hresult_and_keeps_a_given_name() -> None:
    with capture_trace() as events:
        rt_trace.emit("x", hresult=hr.RPC_E_CALL_REJECTED)
        rt_trace.emit("y", hresult=hr.S_OK, hresult_name="mine")
        rt_trace.emit("z", hresult=None)
    assert [e.get("hresult_name") for e in events] == ["RPC_E_CALL_REJECTED", "mine", None]


# --------------------------------------------------------------------------- a sync call
def test_sync_call_pictures() -> None:
    events = sync_call()
    assert events.to_mermaid().splitlines() == [
        "sequenceDiagram",
        "    participant A0 as ui",
        "    participant A1 as worker",
        "    A0->>A1: Work (call 1)",
        "    A1-->>A0: ok (call 1)",
    ]
    text = events.to_text().splitlines()
    assert text[0].split() == ["t/ms", "apartment", "event"]
    assert text[1].split() == ["0.000", "ui", "sends", "Work", "(call", "1)", "to", "worker"]
    assert "    2.000  worker     Work (call 1) returns ok to ui" in text
    # the worker's shutdown disconnects the stub last (R7, R18): the call's lines come before
    assert text[-1].endswith("reason='shutdown'") and "stub.disconnected" in text[-1]
    assert text[-2].endswith("ui         Work (call 1) completes: ok")
    assert len(text) == 1 + len(events)


def test_sync_call_chrome_trace() -> None:
    events = sync_call()
    out = validate(events.to_chrome_trace())
    assert tracks(out) == {"ui": 1, "worker": 2}
    assert [ev["args"]["name"] for ev in out if ev["name"] == "process_name"] == ["comsim"]
    (served,) = [ev for ev in out if ev["ph"] == "X" and ev.get("cat") == "call"]
    assert served["name"] == "Work" and served["tid"] == 2
    assert served["ts"] == _at(events, "call.dispatched")
    assert served["dur"] == _at(events, "call.returned") - _at(events, "call.dispatched") == 2000
    assert served["args"] == {"call_id": 1, "causality_id": 1, "client": "ui",
                              "server": "worker", "hresult": 0, "hresult_name": "S_OK"}
    flows = [(ev["name"], ev["ph"], ev["tid"], ev["ts"]) for ev in out if ev["ph"] in "sf"]
    assert flows == [("request Work", "s", 1, 0.0), ("request Work", "f", 2, 0.0),
                     ("reply Work", "s", 2, 2000.0), ("reply Work", "f", 1, 2000.0)]


# --------------------------------------------------------------------------- cancels (R29)
def test_cancelled_while_queued() -> None:  # R29 queued: the server never ran it
    events = cancelled_call("queued")
    assert [e["stage"] for e in events.events("call.cancelled")] == ["queued"]
    lines = events.to_mermaid().splitlines()
    assert lines[3:] == [
        "    A0->>A1: Work (call 1)",
        "    A0-)A1: cancel Work (call 1)",
        "    Note over A1: Work (call 1) cancelled while queued, the server never ran it",
        "    Note over A0: Work (call 1) ends RPC_E_CALL_CANCELED",
    ]
    out = validate(events.to_chrome_trace())
    assert not [ev for ev in out if ev["ph"] == "X" and ev["cat"] == "call"]  # never ran
    assert not [ev for ev in out if ev["ph"] in "sf"]  # no message was taken in
    (stage,) = [ev for ev in out if ev["name"] == "cancelled (queued) Work"]
    assert stage["ph"] == "i" and stage["s"] == "t" and stage["tid"] == tracks(out)["worker"]
    assert stage["args"]["hresult_name"] == "RPC_E_CALL_CANCELED"


def test_cancelled_while_running() -> None:  # R29 running, R30: the server is interrupted
    events = cancelled_call("running")
    assert [e["stage"] for e in events.events("call.cancelled")] == ["running"]
    lines = events.to_mermaid().splitlines()
    assert "    A0-)A1: cancel Work (call 1)" in lines
    assert "    Note over A1: Work (call 1) cancelled while running, the server was told" in lines
    assert lines[-1] == "    A1--xA0: RPC_E_CALL_CANCELED (call 1) dropped"
    assert "    A1-->>A0: RPC_E_CALL_CANCELED (call 1)" not in lines  # drawn once, crossed
    out = validate(events.to_chrome_trace())
    (served,) = [ev for ev in out if ev["ph"] == "X" and ev["cat"] == "call"]
    assert served["dur"] == _at(events, "call.returned") - _at(events, "call.dispatched") > 0
    assert served["args"]["hresult_name"] == "RPC_E_CALL_CANCELED"
    names = [ev["name"] for ev in out if ev["ph"] == "i"]
    assert names == ["cancel Work", "cancelled (running) Work", "reply dropped Work"]


def test_cancelled_after_finishing() -> None:  # R29 finished: work done, the reply dropped
    events = cancelled_call("finished")
    assert [e["stage"] for e in events.events("call.cancelled")] == ["finished"]
    lines = events.to_mermaid().splitlines()
    assert lines[3:] == [
        "    A0->>A1: Work (call 1)",
        "    A0-)A1: cancel Work (call 1)",
        "    Note over A0: Work (call 1) ends RPC_E_CALL_CANCELED",
        "    Note over A1: Work (call 1) cancelled after the server finished, its work is done",
        "    A1--xA0: ok (call 1) dropped",  # the server's S_OK, too late
    ]
    out = validate(events.to_chrome_trace())
    ids = tracks(out)
    (served,) = [ev for ev in out if ev["ph"] == "X" and ev["cat"] == "call"]
    assert served["args"]["hresult_name"] == "S_OK" and served["dur"] == 2000
    (client,) = [ev for ev in out if ev["ph"] == "X" and ev["cat"] == "client"]
    assert client["tid"] == ids["ui"] and client["args"]["hresult_name"] == "RPC_E_CALL_CANCELED"
    # the reply's arrow ends where it is dropped (7 ms), not where the call ended (3 ms)
    reply = {ev["ph"]: ev for ev in out if ev["name"] == "reply Work"}
    assert reply["s"]["id"] == reply["f"]["id"]
    assert (reply["s"]["tid"], reply["s"]["ts"]) == (ids["worker"], _at(events, "call.returned"))
    assert (reply["f"]["tid"], reply["f"]["ts"]) == (ids["ui"], _at(events, "call.reply_dropped"))
    assert reply["f"]["ts"] == 7000.0
    # (the call object was released before the reply came)
    assert "    7.000  ui         drops the reply to Work (call 1): ok (released)" in (
        events.to_text().splitlines())


# --------------------------------------------------------------------------- a rejection
def test_rejected_call() -> None:  # R16: the filter rejects, the caller's filter gives up
    events = rejected_call()
    (done,) = events.events("call.completed")
    assert done["hresult_name"] == "RPC_E_CALL_REJECTED"
    assert events.to_mermaid().splitlines()[3:] == [
        "    A0->>A1: Work (call 1)",
        "    A1-->>A0: RPC_E_CALL_REJECTED (call 1)",
    ]
    out = validate(events.to_chrome_trace())
    slices = [(ev["cat"], ev["tid"]) for ev in out if ev["ph"] == "X"]
    assert slices == [("client", tracks(out)["ui"])]  # never dispatched: no server slice
    assert "ui         Work (call 1) completes: RPC_E_CALL_REJECTED" in events.to_text()


# --------------------------------------------------------------------------- edge cases
def _ev(event: str, **fields: Any) -> dict[str, Any]:
    base = {"call_id": 7, "causality_id": 7, "method": "M", "client": "a", "server": "b",
            "t": 0.0}
    return {"event": event, **base, **fields}


def test_mermaid_escapes_what_would_break_the_diagram() -> None:
    assert mermaid_text("a;b#c<d>&e") == "a#59;b#35;c#lt;d#gt;#amp;e"
    assert mermaid_text("x: y\nz") == "x: y z"  # a message may hold colons, not newlines
    assert mermaid_text("sta-1: a,b", label=True) == "sta#45;1#58; a#44;b"
    events = Trace([_ev("call.sent", method="Go;now", client="ui#1", server="w-1")])
    assert events.to_mermaid().splitlines()[1:] == [
        "    participant A0 as ui#35;1",
        "    participant A1 as w#45;1",
        "    A0->>A1: Go#59;now (call 7)",
    ]


def test_code_outside_apartments_is_its_own_participant_and_track() -> None:
    events = Trace([_ev("call.sent", client=None), {"event": "note", "apartment": "-", "t": 0.0}])
    assert f"    participant A0 as {OUTSIDE}" in events.to_mermaid()
    assert tracks(validate(events.to_chrome_trace())) == {OUTSIDE: 1, "b": 2}
    assert events.to_text().splitlines()[2].split()[:2] == ["0.000", OUTSIDE]


def test_unfinished_call_and_unknown_events() -> None:
    events = Trace([_ev("call.sent"), _ev("call.dispatched", t=0.001),
                    _ev("latency.error", apartment="b", t=0.004, exc="bad")])
    out = validate(events.to_chrome_trace())
    (served,) = [ev for ev in out if ev["ph"] == "X" and ev["cat"] == "call"]
    assert served["args"]["unfinished"] is True and served["dur"] == 3000  # to the trace's end
    assert "latency.error" not in events.to_mermaid()
    assert "b          latency.error call_id=7" in events.to_text()
    assert Trace().to_mermaid() == "sequenceDiagram\n"
    assert validate(Trace().to_chrome_trace())[0]["name"] == "process_name"
