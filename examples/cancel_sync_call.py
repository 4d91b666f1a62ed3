"""Canceling a synchronous call from another apartment: CoCancelCall (rule R31).

Microsoft's "Canceling Method Calls": a synchronous call blocks its thread, so another thread
cancels it with ``CoCancelCall(thread_id, timeout)``. The blocked thread must have allowed it
beforehand with ``CoEnableCallCancellation`` (a per-thread count, undone by
``CoDisableCallCancellation``); a call is cancellable or not by the count *when it was made*.
The server is told at once; ``CoCancelCall`` waits up to ``timeout`` seconds for it to
acknowledge (R28's grace rule), and the blocked caller's call fails with RPC_E_CALL_CANCELED.

Part 1: the client STA enables cancellation and calls ``Work``; a "watchdog" STA cancels it.
Part 2: the same without ``CoEnableCallCancellation``: ``CoCancelCall`` answers
CO_E_CANCEL_DISABLED and the call runs on to its end.
Part 3: ``CoCancelCall`` for a thread with no pending call answers E_NOINTERFACE.

    python examples/cancel_sync_call.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import comsim
from comsim import hresult

T0 = time.monotonic()
LINES: list[str] = []


def say(text: str) -> None:
    """Print one timeline line, tagged with the apartment that runs it."""
    apt = comsim.current_apartment()
    line = f"[{apt.name if apt else 'main'}] {text}"
    LINES.append(line)
    print(f"{(time.monotonic() - T0) * 1000:6.1f} ms  {line}\n", end="")  # one write


class IWorker(comsim.Interface):
    async def Work(self, started: comsim.ISynchronize, release: comsim.ISynchronize) -> str: ...


class Worker(comsim.CoClass, IWorker):
    async def Work(self, started: comsim.ISynchronize, release: comsim.ISynchronize) -> str:
        say("Worker.Work starts")
        started.Signal()
        try:
            hr = await release.Wait(0, 2000)  # until the watchdog lets go (2 s at most)
        except asyncio.CancelledError:
            say("Worker.Work interrupted by the cancel")
            raise
        say(f"Worker.Work ends (released: {hresult.name(hr)})")
        return "work done"


async def main() -> dict[str, Any]:
    global T0
    T0 = time.monotonic()
    LINES.clear()
    out: dict[str, Any] = {}

    async with comsim.Runtime() as rt:
        client = await rt.create_sta("client")
        server = await rt.create_sta("server")
        watchdog = await rt.create_sta("watchdog")

        async def make() -> comsim.MarshalStream:
            return comsim.marshal_interface(Worker(), IWorker,
                                            flags=comsim.MSHLFLAGS.TABLESTRONG)

        stream = await server.run(make)

        async def thread_id() -> int:
            return comsim.current_thread_id()

        client_tid = await client.run(thread_id)

        async def call_work(enable: bool, started: comsim.ManualResetEvent,
                            release: comsim.ManualResetEvent) -> Any:
            worker = comsim.unmarshal_interface(stream)
            if enable:
                say(f"CoEnableCallCancellation() -> "
                    f"{hresult.name(comsim.CoEnableCallCancellation())}")
            say(f"calling Work on thread {comsim.current_thread_id()}; this thread now waits")
            try:
                result: Any = await worker.Work(started, release)
                say(f"Work returned {result!r}")
            except comsim.COMError as exc:
                say(f"Work failed: {hresult.name(exc.hresult)}")
                result = exc.hresult
            if enable:
                say(f"CoDisableCallCancellation() -> "
                    f"{hresult.name(comsim.CoDisableCallCancellation())}")
            worker.Release()
            return result

        async def cancel_it(started: comsim.ManualResetEvent,
                            release: comsim.ManualResetEvent) -> int:
            await started.Wait(0, comsim.INFINITE)  # the call is now running in the server
            say(f"CoCancelCall({client_tid}, 1) ...")
            hr = await comsim.CoCancelCall(client_tid, 1)  # wait up to 1 s for the server
            say(f"CoCancelCall -> {hresult.name(hr)}")
            release.Signal()  # whatever happened, let the server go on
            return hr

        for part, enable in ((1, True), (2, False)):
            print(f"--- part {part}: cancellation "
                  + ("enabled" if enable else "not enabled (the default)"))
            started, release = comsim.ManualResetEvent(), comsim.ManualResetEvent()
            call_result, cancel_hr = await asyncio.gather(
                client.run(call_work, enable, started, release),
                watchdog.run(cancel_it, started, release),
            )
            out[f"part{part}"] = {"call": call_result, "cancel": cancel_hr}

        print("--- part 3: nothing to cancel")

        async def cancel_idle() -> int:
            hr = await comsim.CoCancelCall(client_tid, 0)
            say(f"CoCancelCall({client_tid}, 0) with no call pending -> {hresult.name(hr)}")
            return hr

        out["part3"] = {"cancel": await watchdog.run(cancel_idle)}
        comsim.release_marshal_data(stream)

    out["lines"] = list(LINES)
    return out


if __name__ == "__main__":
    asyncio.run(main())
