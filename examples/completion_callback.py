"""Being told when an asynchronous call completes: ``CreateCall(AsyncIX, outer=...)`` (R24).

Instead of polling the call object's ``ISynchronize`` ("Making an Asynchronous Call"), a client
can hand ``CreateCall`` an object of its own with a ``Signal()`` method (in COM, the controlling
outer object whose ``ISynchronize::Signal`` the call object calls). When the call ends -- by a
reply, or by a cancel -- comsim first signals the call object's own event, then calls
``outer.Signal()`` exactly once, in the *client's* apartment, on its thread. The object is a
plain Python object: it is not marshalled, and what ``Signal`` returns is ignored.

Here the notifier wakes the client, which then collects the result with ``Finish_``. A second
call on the same call object signals the notifier again; a cancelled call does too.

    python examples/completion_callback.py
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


class IOven(comsim.Interface):
    async def Bake(self, minutes: int) -> str: ...


AsyncIOven = comsim.async_interface(IOven)


class Oven(comsim.CoClass, IOven):
    async def Bake(self, minutes: int) -> str:
        say(f"Oven.Bake({minutes}) starts")
        await asyncio.sleep(minutes / 1000)  # a "minute" is a millisecond here
        say("Oven.Bake ends")
        return f"bread after {minutes} minutes"


class Notifier:
    """The ``outer`` object: a plain object with ``Signal()``; not a CoClass, not marshalled."""

    def __init__(self) -> None:
        self.signals: list[dict[str, Any]] = []
        self.woken: asyncio.Event | None = None  # created in the client apartment, used there

    def Signal(self) -> None:
        apt = comsim.current_apartment()
        self.signals.append({"apartment": apt.name if apt else None,
                             "thread": threading.get_ident()})
        say(f"Notifier.Signal() #{len(self.signals)} -- the call has ended")
        if self.woken is not None:
            self.woken.set()


async def main() -> dict[str, Any]:
    global T0
    T0 = time.monotonic()
    LINES.clear()
    notifier = Notifier()

    async with comsim.Runtime() as rt:
        client = await rt.create_sta("client")
        server = await rt.create_sta("server")

        async def make() -> comsim.MarshalStream:
            return comsim.marshal_interface(Oven(), IOven)

        stream = await server.run(make)

        async def use() -> dict[str, Any]:
            client_thread = threading.get_ident()
            oven = comsim.unmarshal_interface(stream)
            factory = oven.QueryInterface(comsim.ICallFactory)
            call = factory.CreateCall(AsyncIOven, outer=notifier)
            factory.Release()

            # 1. a call that completes: Signal() wakes us, then Finish_ collects the result
            notifier.woken = asyncio.Event()  # an asyncio event: used only in this apartment
            call.Begin_Bake(30)
            say("Begin_Bake(30) -> S_OK; waiting for the notifier")
            await notifier.woken.wait()
            sync = call.QueryInterface(comsim.ISynchronize)
            own_event = await sync.Wait(0, 0)  # signalled before outer.Signal() (R24)
            sync.Release()
            say(f"the call object's own event: Wait(0, 0) -> {hresult.name(own_event)}")
            bread = await call.Finish_Bake()
            say(f"Finish_Bake() -> {bread!r}")

            # 2. a call that is cancelled: the notifier is told too
            notifier.woken = asyncio.Event()
            call.Begin_Bake(10_000)
            cancel = call.QueryInterface(comsim.ICancelMethodCalls)
            cancel_hr = await cancel.Cancel(0)
            cancel.Release()
            say(f"Begin_Bake(10000), then Cancel(0) -> {hresult.name(cancel_hr)}")
            await notifier.woken.wait()
            try:
                await call.Finish_Bake()
                finish_hr = hresult.S_OK
            except comsim.COMError as exc:
                finish_hr = exc.hresult
            say(f"Finish_Bake() -> {hresult.name(finish_hr)}")
            call.Release()
            oven.Release()
            return {"result": bread, "own_event": own_event, "cancel": cancel_hr,
                    "finish_after_cancel": finish_hr, "client_thread": client_thread}

        out = await client.run(use)

    out["signals"] = notifier.signals
    out["lines"] = list(LINES)
    return out


if __name__ == "__main__":
    asyncio.run(main())
