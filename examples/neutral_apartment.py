"""The neutral apartment: a call into it needs no thread switch (rule R5).

Microsoft's page "Neutral Apartments" describes the NA: it has no threads of its own. A call
into a neutral object runs on the caller's own thread, with the NA current, so it costs no
thread switch, yet the caller still holds a proxy (a lightweight one) because the object lives
in another apartment. Inside the NA, ``CoGetApartmentType`` says NA.

This script creates a "Neutral" object from two STAs and calls it from each. The creator gets
a proxy; the method runs on the caller's simulated thread (and OS thread) with the NA current.
Code already in the NA gets the object itself: no proxy.

    python examples/neutral_apartment.py
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import comsim

LINES: list[str] = []


def say(text: str) -> None:
    apt = comsim.current_apartment()
    line = f"[{apt.name if apt else 'main'}] {text}"
    LINES.append(line)
    print(line)


class ICounter(comsim.Interface):
    async def Bump(self) -> dict[str, Any]: ...


class Counter(comsim.CoClass, ICounter):
    threading_model = "Neutral"

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def Bump(self) -> dict[str, Any]:
        self.n += 1
        seen = {"n": self.n, "type": comsim.CoGetApartmentType().name,
                "thread": comsim.current_thread_id(), "os_thread": threading.get_ident()}
        say(f"Counter.Bump #{self.n} on simulated thread {seen['thread']}")
        return seen


async def main() -> dict[str, Any]:
    LINES.clear()
    out: dict[str, Any] = {"calls": []}
    async with comsim.Runtime() as rt:
        a = await rt.create_sta("a")
        b = await rt.create_sta("b")

        async def bump(counter: Any) -> None:
            seen = await counter.Bump()
            mine = {"thread": comsim.current_thread_id(), "os_thread": threading.get_ident()}
            same = seen["thread"] == mine["thread"] and seen["os_thread"] == mine["os_thread"]
            say(f"Bump ran in the {seen['type']}, on my own thread: {same}")
            out["calls"].append({"seen": seen, "mine": mine})

        async def create() -> comsim.MarshalStream:
            counter = await comsim.CoCreateInstance(Counter, ICounter)
            out["proxy"] = isinstance(counter, comsim.Proxy)
            say(f"CoCreateInstance gave {'a proxy' if out['proxy'] else 'the object itself'}")
            await bump(counter)
            return comsim.marshal_interface(counter, ICounter)

        stream = await a.run(create)

        async def use() -> None:
            await bump(comsim.unmarshal_interface(stream))

        await b.run(use)

        async def in_na() -> bool:
            own = await comsim.CoCreateInstance(Counter, ICounter)
            say(f"from inside the NA, CoCreateInstance gave "
                f"{'a proxy' if isinstance(own, comsim.Proxy) else 'the object itself'}")
            return isinstance(own, comsim.Proxy)

        out["proxy_in_na"] = await a.run(rt.nta.run, in_na)
    out["lines"] = list(LINES)
    return out


if __name__ == "__main__":
    asyncio.run(main())
