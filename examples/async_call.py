"""Making an Asynchronous Call (rules R19-R23), step by step as in Microsoft's page.

To begin an asynchronous call:
  1. QueryInterface the (proxy of the) server object for ``ICallFactory``;
  2. ``CreateCall(AsyncIX)`` gives a call object; release the factory;
  3. call ``Begin_M(...)``: it returns S_OK at once while the server works.
A call object runs one call at a time: a second ``Begin_`` before ``Finish_`` fails with
RPC_E_CALL_PENDING (R21).

To complete it:
  1. QueryInterface the call object for ``ISynchronize``;
  2. ``Wait(0, ms)``: S_OK once the call has ended; on time-out comsim gives
     RPC_S_CALLPENDING (``ISynchronize::Wait``'s documented code; the "Making an Asynchronous
     Call" page calls it RPC_E_TIMEOUT) and the client may do other work and poll again;
  3. ``Finish_M()`` gives exactly what the synchronous M would have given (R22). Calling it
     again, with no call in progress, fails with RPC_E_CALL_COMPLETE.

    python examples/async_call.py
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


class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...
    async def Work(self, seconds: float) -> str: ...


AsyncICalc = comsim.async_interface(ICalc)  # Begin_Add/Finish_Add, Begin_Work/Finish_Work


class Calc(comsim.CoClass, ICalc):
    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Work(self, seconds: float) -> str:
        say(f"Calc.Work({seconds}) starts")
        await asyncio.sleep(seconds)
        say("Calc.Work ends")
        return f"worked {seconds} s"


async def main() -> dict[str, Any]:
    global T0
    T0 = time.monotonic()
    LINES.clear()

    async with comsim.Runtime() as rt:
        client = await rt.create_sta("client")
        server = await rt.create_sta("server")

        async def make() -> comsim.MarshalStream:
            return comsim.marshal_interface(Calc(), ICalc)

        stream = await server.run(make)

        async def use() -> dict[str, Any]:
            calc = comsim.unmarshal_interface(stream)

            # -- to begin an asynchronous call
            factory = calc.QueryInterface(comsim.ICallFactory)
            call = factory.CreateCall(AsyncICalc)
            factory.Release()
            begin = call.Begin_Work(0.15)
            say(f"Begin_Work(0.15) -> {hresult.name(begin)}; the server works, we go on")
            try:
                call.Begin_Add(1, 2)
                second_begin = hresult.S_OK
            except comsim.COMError as exc:
                second_begin = exc.hresult
            # RPC_E_CALL_PENDING has the value of RPC_S_CALLPENDING (R21), so name it here
            pending = second_begin == hresult.RPC_E_CALL_PENDING
            say("a second Begin_ before Finish_ -> "
                + ("RPC_E_CALL_PENDING" if pending else hresult.name(second_begin)))

            # -- to complete it: poll ISynchronize.Wait, doing other work in between
            sync = call.QueryInterface(comsim.ISynchronize)
            polls: list[int] = []
            other_work = 0
            while True:
                hr = await sync.Wait(0, 40)  # a COM wait of at most 40 ms
                polls.append(hr)
                say(f"Wait(0, 40) -> {hresult.name(hr)}")
                if hr == hresult.S_OK:
                    break
                other_work += 1  # the client is free to do other things meanwhile
            sync.Release()
            text = await call.Finish_Work()
            say(f"Finish_Work() -> {text!r}")
            try:
                await call.Finish_Work()
                second_finish = hresult.S_OK
            except comsim.COMError as exc:
                second_finish = exc.hresult
            say(f"Finish_Work() again -> {hresult.name(second_finish)}")

            # -- after Finish_ the same call object can begin again (R22)
            call.Begin_Add(2, 3)
            total = await call.Finish_Add()  # Finish_ itself waits (a COM wait)
            say(f"Begin_Add(2, 3) then Finish_Add() -> {total}")
            call.Release()
            calc.Release()
            return {"begin": begin, "second_begin": second_begin, "polls": polls,
                    "other_work": other_work, "result": text,
                    "second_finish": second_finish, "sum": total}

        out = await client.run(use)

    out["lines"] = list(LINES)
    return out


if __name__ == "__main__":
    asyncio.run(main())
