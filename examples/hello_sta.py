"""Hello, STA: one COM call between two single-threaded apartments (rule R13).

A single-threaded apartment (STA) is one thread with one event loop. An object lives in the
apartment that constructed it (R1); code in any other apartment reaches it only through a proxy.
A call through a proxy is a request message to the object's stub in the server's apartment,
where the method runs on the server's thread, and a reply message back; meanwhile the caller
waits (R13, and Microsoft's "Single-Threaded Apartments").

This script creates two STAs, builds a ``Greeter`` in the "server" STA, marshals it to the
"client" STA and calls it, printing which apartment and which OS thread runs each step.

    python examples/hello_sta.py
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import comsim

T0 = time.monotonic()
LINES: list[str] = []


def say(text: str) -> None:
    """Print one timeline line, tagged with the apartment that runs it."""
    apt = comsim.current_apartment()
    line = f"[{apt.name if apt else 'main'}] {text}"
    LINES.append(line)
    print(f"{(time.monotonic() - T0) * 1000:6.1f} ms  {line}\n", end="")  # one write


class IGreeter(comsim.Interface):
    async def Greet(self, name: str) -> str: ...


class Greeter(comsim.CoClass, IGreeter):
    async def Greet(self, name: str) -> str:
        apt = comsim.current_apartment()
        assert apt is not None
        say(f"Greeter.Greet({name!r}) runs here, on OS thread {threading.current_thread().name}")
        return f"Hello, {name}, from {apt.name}!"


async def main() -> dict[str, Any]:
    global T0
    T0 = time.monotonic()
    LINES.clear()
    seen: dict[str, Any] = {}

    async with comsim.Runtime() as rt:
        client = await rt.create_sta("client")  # the first STA is the main STA (R4)
        server = await rt.create_sta("server")

        async def make() -> comsim.MarshalStream:
            seen["server_type"] = comsim.CoGetApartmentType().name
            seen["server_thread"] = threading.get_ident()
            say(f"constructing Greeter (apartment type {seen['server_type']})")
            return comsim.marshal_interface(Greeter(), IGreeter)

        stream = await server.run(make)

        async def use() -> str:
            seen["client_type"] = comsim.CoGetApartmentType().name
            seen["client_thread"] = threading.get_ident()
            proxy = comsim.unmarshal_interface(stream)  # a proxy bound to this apartment
            say(f"got {type(proxy).__name__} on OS thread {threading.current_thread().name}; "
                "calling Greet (this thread now waits, R13)")
            text = await proxy.Greet("world")
            say(f"Greet returned {text!r}")
            proxy.Release()
            return text

        seen["result"] = await client.run(use)

    seen["lines"] = list(LINES)
    return seen


if __name__ == "__main__":
    asyncio.run(main())
