"""``comsim demo``: the seed page, "Canceling an Asynchronous Call", run and drawn as timelines.

Part 1: a synchronous STA-to-STA call on the threaded runtime (two OS threads, two loops).
Part 2: the seed procedure -- Begin_, QueryInterface(ICancelMethodCalls), Cancel, Release,
Finish_ -- once for each of R29's three outcomes, on the deterministic runtime, so the timeline
is the same on every run (virtual milliseconds).
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio

import comsim
from comsim import hresult as hr
from comsim.testing import Trace, capture_trace

from ._runtime import trace as _trace


class IWorker(comsim.Interface):
    async def Work(self, label: str, gate: Any) -> str:  # type: ignore[empty-body]
        ...


class Worker(comsim.CoClass, IWorker):
    """Works until ``gate`` is signalled (a free-threaded event), or for 10 ms."""

    cancel_policy = "interrupt"

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def Work(self, label: str, gate: Any) -> str:
        note(f"Work({label!r}) starts", side="server")
        try:
            if gate is not None:
                await gate.Wait(0, comsim.INFINITE)
            else:
                await anyio.sleep(0.010)
        except BaseException:
            note(f"Work({label!r}) interrupted by the cancel", side="server")
            self.log.append(f"{label}: interrupted")
            raise
        note(f"Work({label!r}) done, returns", side="server")
        self.log.append(f"{label}: done")
        return f"{label} result"


AsyncIWorker = comsim.async_interface(IWorker)


def note(text: str, side: str = "client") -> None:
    """A line of the story, recorded in the trace beside comsim's own events."""
    apt = comsim.current_apartment()
    rt = apt._rt if apt is not None else None
    _trace.emit("note", text=text, side=side,
                apartment=apt.name if apt is not None else "-",
                t=(rt._now() - rt._t0) if rt is not None else 0.0)


_LABELS = {
    "call.sent": "request sent",
    "call.arrived": "request arrives",
    "call.dispatched": "dispatched: the server method starts",
    "call.returned": "server method returned",
    "call.completed": "Finish_ returns",
    "call.cancel_requested": "ICancelMethodCalls::Cancel",
    "call.cancelled": "call ends cancelled",
    "call.reply_dropped": "late reply dropped",
}
_SERVER_SIDE = {"call.arrived", "call.dispatched", "call.returned"}


def render(events: Trace, client: str, server: str, width: int = 44) -> list[str]:
    """Two columns, client and server, one line per event."""
    lines = [f"  {'t/ms':>7}  {client:<{width}}{server}", f"  {'':>7}  {'-' * (width - 2):<{width}}"
             f"{'-' * (width - 2)}"]
    for e in events:
        name = e["event"]
        if name == "note":
            text, on_server = e["text"], e["side"] == "server"
        elif name in _LABELS:
            text = _LABELS[name]
            extra = []
            if "stage" in e:
                extra.append(f"stage={e['stage']}")
            if "hresult" in e and name != "call.cancelled":
                extra.append(hr.name(e["hresult"]))
            if extra:
                text += f" ({', '.join(extra)})"
            on_server = name in _SERVER_SIDE
        else:
            continue
        t = f"{e.get('t', 0.0) * 1000:7.2f}"
        lines.append(f"  {t}  {'':<{width}}{text}" if on_server else f"  {t}  {text}")
    return lines


async def _two_stas(rt: comsim.Runtime, log: list[str]
                    ) -> tuple[comsim.Apartment, comsim.Apartment, comsim.MarshalStream]:
    """STAs "ui" and "worker", and a Worker object in "worker", marshalled."""
    ui = await rt.create_sta("ui")
    worker = await rt.create_sta("worker")

    async def make() -> comsim.MarshalStream:
        return comsim.marshal_interface(Worker(log), IWorker)

    return ui, worker, await worker.run(make)


async def sync_call_demo() -> list[str]:
    """Part 1: one synchronous call between two STAs, threaded."""
    with capture_trace() as events:
        async with comsim.Runtime() as rt:
            ui, _worker, stream = await _two_stas(rt, [])

            async def client() -> str:
                proxy = comsim.unmarshal_interface(stream)
                note("await proxy.Work('sync', None)")
                result: str = await proxy.Work("sync", None)
                note(f"got {result!r}")
                return result

            await ui.run(client)
    return ["Part 1: a synchronous call from STA 'ui' to STA 'worker' (threaded runtime)",
            *render(events, "ui (client STA)", "worker (server STA)")]


async def _cancel_outcome(stage: str) -> tuple[list[str], dict[str, Any]]:
    """The seed procedure for one of R29's stages, on the deterministic runtime."""
    with capture_trace() as events:
        async with comsim.Runtime(deterministic=True, seed=1) as rt:
            log: list[str] = []
            ui, worker, stream = await _two_stas(rt, log)
            if stage == "finished":
                # the reply takes 5 ms to travel back: the cancel overtakes it
                rt.set_latency(0.005, source="worker", target="ui")
            blocker = comsim.ManualResetEvent()
            started = comsim.ManualResetEvent()

            async def keep_busy() -> None:  # holds the worker STA: a non-COM wait
                started.Signal()
                await anyio.sleep(0.020)

            if stage == "queued":
                busy = asyncio.ensure_future(worker.run(keep_busy))
                await started.Wait(0, comsim.INFINITE)

            async def client() -> dict[str, Any]:
                proxy = comsim.unmarshal_interface(stream)
                factory = proxy.QueryInterface(comsim.ICallFactory)
                call = factory.CreateCall(AsyncIWorker)
                factory.Release()
                gate = None if stage == "finished" else blocker
                note(f"Begin_Work('{stage}')")
                call.Begin_Work(stage, gate)
                sync = call.QueryInterface(comsim.ISynchronize)
                if stage == "running":
                    await sync.Wait(0, 2)  # let the server start
                elif stage == "finished":
                    await sync.Wait(0, 12)  # the server is done; its reply is on the way
                note("1. QueryInterface(ICancelMethodCalls)")
                cancel = call.QueryInterface(comsim.ICancelMethodCalls)
                note("2. Cancel(0), then Release()")
                code = await cancel.Cancel(0)
                cancel.Release()
                note(f"   Cancel gave {hr.name(code)}")
                note("3. Finish_Work()")
                try:
                    value = await call.Finish_Work()
                    outcome = f"result {value!r}"
                except comsim.COMError as exc:
                    outcome = hr.name(exc.hresult)
                note(f"   Finish_Work: {outcome}")
                sync.Release()
                call.Release()
                return {"cancel": hr.name(code), "finish": outcome}

            result = await ui.run(client)
            if stage == "queued":
                await busy
            blocker.Signal()
    result["server"] = list(log)  # read once the runtime has shut down: all work has ended
    stages = [e["stage"] for e in events.events("call.cancelled")]
    result["stage"] = stages[0] if stages else None
    titles = {
        "queued": "cancelled while queued: the server never ran it",
        "running": "cancelled while running: the server is told and interrupted",
        "finished": "cancelled after the server finished: its work is done, the reply dropped",
    }
    lines = [f"Outcome '{stage}': {titles[stage]}",
             *render(events, "ui (client STA)", "worker (server STA)"),
             f"  server log: {result['server'] or ['(never ran)']}"]
    return lines, result


async def cancel_demo() -> tuple[list[str], list[dict[str, Any]]]:
    lines = ["Part 2: \"Canceling an Asynchronous Call\" -- the seed procedure, three outcomes "
             "(deterministic runtime, virtual ms)"]
    results = []
    for stage in ("queued", "running", "finished"):
        out, res = await _cancel_outcome(stage)
        lines += ["", *out]
        results.append(res)
    return lines, results


def run_demo(print_fn: Any = print) -> dict[str, Any]:
    """Run both parts, print them, and give what happened (for tests)."""
    part1 = asyncio.run(sync_call_demo())
    for line in part1:
        print_fn(line)
    print_fn("")
    part2, results = comsim.testing.run(cancel_demo)
    for line in part2:
        print_fn(line)
    print_fn("")
    print_fn("No guarantee that the server stopped: in 'finished' it had done its work "
             "although the client saw RPC_E_CALL_CANCELED.")
    return {"sync": part1, "cancel": results}
