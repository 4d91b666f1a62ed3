"""Message filters: a busy STA says "retry later", the caller's filter retries (rule R16).

An STA may register an ``IMessageFilter`` with ``CoRegisterMessageFilter`` (Microsoft:
"IMessageFilter", "Implementing IMessageFilter"). On the *server* side,
``HandleInComingCall`` is asked before each synchronous call is dispatched and may answer
SERVERCALL_ISHANDLED, SERVERCALL_REJECTED or SERVERCALL_RETRYLATER. On the *caller* side, a
rejected call asks the caller's ``RetryRejectedCall``: a negative answer gives up (the call
fails with RPC_E_CALL_REJECTED), 0-99 retries at once, 100 or more retries after that many
milliseconds -- a COM wait, so the caller's STA stays responsive meanwhile. A caller with no
filter gives up at once.

Part 1: the server's filter rejects the first call with SERVERCALL_RETRYLATER; the caller's
filter answers 100, so the call is sent again 100 ms later and succeeds.
Part 2: the caller unregisters its filter (``CoRegisterMessageFilter(None)``); the same
rejection now fails the call with RPC_E_CALL_REJECTED.

    python examples/message_filter.py
"""

from __future__ import annotations

import asyncio
import threading
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


CALLTYPES = {comsim.CALLTYPE_TOPLEVEL: "TOPLEVEL", comsim.CALLTYPE_NESTED: "NESTED",
             comsim.CALLTYPE_TOPLEVEL_CALLPENDING: "TOPLEVEL_CALLPENDING"}
ANSWERS = {comsim.SERVERCALL_ISHANDLED: "SERVERCALL_ISHANDLED",
           comsim.SERVERCALL_REJECTED: "SERVERCALL_REJECTED",
           comsim.SERVERCALL_RETRYLATER: "SERVERCALL_RETRYLATER"}


class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...


class Calc(comsim.CoClass, ICalc):
    async def Add(self, a: int, b: int) -> int:
        say(f"Calc.Add({a}, {b}) runs")
        return a + b


class BusyServerFilter(comsim.IMessageFilter):
    """The server's filter: says RETRYLATER to the next ``busy_for`` incoming calls."""

    def __init__(self, busy_for: int) -> None:
        self.busy_for = busy_for
        self.seen: list[dict[str, Any]] = []

    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           interface_info: tuple[type[comsim.Interface], str]) -> int:
        iface, method = interface_info
        answer = comsim.SERVERCALL_ISHANDLED
        if self.busy_for > 0:
            self.busy_for -= 1
            answer = comsim.SERVERCALL_RETRYLATER
        apt = comsim.current_apartment()  # the callee STA (R16)
        self.seen.append({"call_type": call_type, "tick_count": tick_count,
                          "method": f"{iface.__name__}.{method}", "answer": answer,
                          "apartment": apt.name if apt else None,
                          "os_thread": threading.current_thread().name})
        say(f"HandleInComingCall({CALLTYPES.get(call_type, call_type)}, thread {caller_thread},"
            f" {tick_count} ms, {iface.__name__}.{method}) -> {ANSWERS[answer]}")
        return answer


class PatientCallerFilter(comsim.IMessageFilter):
    """The caller's filter: retry a rejected call after 100 ms."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        self.seen.append({"tick_count": tick_count, "reject_type": reject_type})
        say(f"RetryRejectedCall(thread {callee_thread}, {tick_count} ms, "
            f"{ANSWERS[reject_type]}) -> 100: retry in 100 ms")
        return 100


async def main() -> dict[str, Any]:
    global T0
    T0 = time.monotonic()
    LINES.clear()
    out: dict[str, Any] = {}

    async with comsim.Runtime() as rt:
        client = await rt.create_sta("client")
        server = await rt.create_sta("server")
        server_filter = BusyServerFilter(busy_for=1)
        caller_filter = PatientCallerFilter()

        async def setup_server() -> comsim.MarshalStream:
            comsim.CoRegisterMessageFilter(server_filter)
            return comsim.marshal_interface(Calc(), ICalc)

        stream = await server.run(setup_server)

        async def part1() -> dict[str, Any]:
            print("--- part 1: the caller's filter retries after 100 ms")
            previous = comsim.CoRegisterMessageFilter(caller_filter)
            say(f"registered the caller's filter (previous: {previous})")
            calc = comsim.unmarshal_interface(stream)
            start = time.monotonic()
            say("calling Add(2, 3)")
            value = await calc.Add(2, 3)
            elapsed_ms = (time.monotonic() - start) * 1000
            say(f"Add returned {value} after {elapsed_ms:.0f} ms")
            return {"value": value, "elapsed_ms": elapsed_ms, "proxy": calc}

        first = await client.run(part1)
        calc = first.pop("proxy")

        async def server_busy_again() -> None:
            server_filter.busy_for = 1

        await server.run(server_busy_again)

        async def part2() -> int:
            print("--- part 2: no caller filter: a rejected call fails at once")
            comsim.CoRegisterMessageFilter(None)
            say("unregistered the caller's filter; calling Add(4, 5)")
            try:
                await calc.Add(4, 5)
            except comsim.COMError as exc:
                say(f"Add failed: {exc}")
                return exc.hresult
            return hresult.S_OK

        second = await client.run(part2)

    out["part1"] = first
    out["part2_hresult"] = second
    out["incoming"] = server_filter.seen
    out["retries"] = caller_filter.seen
    out["lines"] = list(LINES)
    return out


if __name__ == "__main__":
    asyncio.run(main())
