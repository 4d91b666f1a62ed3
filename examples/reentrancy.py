"""STA re-entrancy and serialization (rule R2).

An STA runs one unit at a time: an incoming call, or work given to ``Apartment.run``. The
running unit keeps the thread until it ends. There is exactly one exception: while the unit is
in a *COM wait* (here: waiting for the reply of an outgoing call through a proxy) the STA lets
the next queued call in, nested on the same thread. That is how a callback can reach an STA
that is itself waiting for the call that triggered the callback -- and it is why an STA object
must expect to be re-entered whenever it makes an outgoing call (Microsoft: "Single-Threaded
Apartments", "Call Synchronization").

Part 1 -- re-entrancy: STA "A" calls ``B.Ping(callback)``; while A waits for the reply, B calls
``callback.Notify()``, which runs in A, on A's thread, nested inside A's waiting unit.

Part 2 -- serialization: a method that awaits something that is *not* a COM wait (here an
``asyncio.sleep`` standing in for blocking I/O) holds the STA; a second client's call queues
until it ends. Part 3 repeats it with a COM wait (``ISynchronize.Wait`` on an event)
instead: now the second call runs nested during the wait -- and may even provide what the
wait waits for. Had Slow waited for that event by non-COM means, it would deadlock, as it
would in COM.

    python examples/reentrancy.py
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


# ------------------------------------------------------------------ part 1: a callback
class ICallback(comsim.Interface):
    async def Notify(self, text: str) -> int: ...


class IPinger(comsim.Interface):
    async def Ping(self, callback: ICallback) -> str: ...


class Callback(comsim.CoClass, ICallback):
    """Lives in A. Records the OS thread its method runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    async def Notify(self, text: str) -> int:
        self.threads.append(threading.get_ident())
        say(f"Callback.Notify({text!r}) runs -- nested: A's first unit still waits for Ping")
        return len(self.threads)


class Pinger(comsim.CoClass, IPinger):
    """Lives in B."""

    async def Ping(self, callback: ICallback) -> str:
        # `callback` arrived as a proxy to the Callback object in A (R11)
        say("Pinger.Ping runs; calling back into A")
        n = await callback.Notify("hello from B")
        say(f"the callback returned {n}")
        return "pong"


async def part1_reentrancy(rt: comsim.Runtime) -> dict[str, Any]:
    print("--- part 1: B calls back into A while A waits for B (re-entrancy)")
    a = await rt.create_sta("A")
    b = await rt.create_sta("B")

    async def make_pinger() -> comsim.MarshalStream:
        return comsim.marshal_interface(Pinger(), IPinger)

    pinger_stream = await b.run(make_pinger)

    async def in_a() -> dict[str, Any]:
        callback = Callback()
        pinger = comsim.unmarshal_interface(pinger_stream)
        say("calling B.Ping(callback); A now waits for the reply (a COM wait)")
        answer = await pinger.Ping(callback)
        say(f"Ping returned {answer!r}")
        return {
            "answer": answer,
            "same_thread": callback.threads == [threading.get_ident()],
        }

    return await a.run(in_a)


# ------------------------------------------------------------------ parts 2 and 3
class IWorker(comsim.Interface):
    async def Slow(self, started: comsim.ISynchronize, com_wait: bool) -> str: ...
    async def Quick(self) -> str: ...


class Worker(comsim.CoClass, IWorker):
    """Lives in STA "S"."""

    def __init__(self) -> None:
        super().__init__()
        self.quick_ran = comsim.ManualResetEvent()

    async def Slow(self, started: comsim.ISynchronize, com_wait: bool) -> str:
        say("Slow starts")
        started.Signal()  # let the second client send its call now
        if com_wait:
            # a COM wait: the STA starts queued calls meanwhile (R2), so Quick runs nested
            # and signals the event this very wait is waiting for (1 s is only a safety net)
            hr = await self.quick_ran.Wait(0, 1000)
            say(f"Slow ends (its wait gave {comsim.hresult.name(hr)})")
        else:
            # a non-COM await: the thread stays busy, nothing else runs in S (R2)
            await asyncio.sleep(0.1)
            say("Slow ends")
        return "slow done"

    async def Quick(self) -> str:
        say("Quick runs")
        self.quick_ran.Signal()
        return "quick done"


async def part2_serialization(rt: comsim.Runtime, com_wait: bool) -> list[str]:
    how = "a COM wait" if com_wait else "a non-COM await (asyncio.sleep)"
    print(f"--- part {3 if com_wait else 2}: Slow waits with {how}; another client calls Quick")
    suffix = "3" if com_wait else "2"
    s = await rt.create_sta("S" + suffix)
    c1 = await rt.create_sta("C1-" + suffix)
    c2 = await rt.create_sta("C2-" + suffix)

    async def make_worker() -> comsim.MarshalStream:
        return comsim.marshal_interface(Worker(), IWorker,
                                        flags=comsim.MSHLFLAGS.TABLESTRONG)

    stream = await s.run(make_worker)
    started = comsim.ManualResetEvent()  # free-threaded, passes by reference
    mark = len(LINES)

    async def first_client() -> str:
        worker = comsim.unmarshal_interface(stream)
        say("calling Slow")
        return await worker.Slow(started, com_wait)

    async def second_client() -> str:
        worker = comsim.unmarshal_interface(stream)
        await started.Wait(0, comsim.INFINITE)  # until Slow has started
        say("calling Quick while Slow is running")
        return await worker.Quick()

    await asyncio.gather(c1.run(first_client), c2.run(second_client))
    comsim.release_marshal_data(stream)
    # only the server's lines, in the order they happened
    return [line.split("] ", 1)[1] for line in LINES[mark:] if line.startswith(f"[S{suffix}]")]


async def main() -> dict[str, Any]:
    global T0
    T0 = time.monotonic()
    LINES.clear()
    async with comsim.Runtime() as rt:
        result = await part1_reentrancy(rt)
        result["serialized_order"] = await part2_serialization(rt, com_wait=False)
        result["com_wait_order"] = await part2_serialization(rt, com_wait=True)
    result["lines"] = list(LINES)
    print("server order with a non-COM await:", result["serialized_order"])
    print("server order with a COM wait:     ", result["com_wait_order"])
    return result


if __name__ == "__main__":
    asyncio.run(main())
