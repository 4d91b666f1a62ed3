"""Canceling an Asynchronous Call (rules R27-R29), step by step as in Microsoft's page.

A client may cancel an asynchronous call at any time from ``Begin_`` until ``Finish_`` returns;
a call object of a proxy always offers ``ICancelMethodCalls`` (R27). The steps:
  1. QueryInterface the call object for ``ICancelMethodCalls``;
  2. call ``Cancel``, then ``Release`` the pointer obtained in step 1;
  3. call ``Finish_`` (if not yet called) to clean up the call object -- until then every
     ``Begin_`` on it fails with RPC_E_CALL_PENDING. After a cancel, ``Finish_`` fails with
     RPC_E_CALL_CANCELED.

"There is no guarantee that the server actually stopped executing the call": if the client's
further work depends on state the call may have changed, it must find out that state before
going on (R29). Part A cancels a server whose method is interrupted by the cancel (comsim's
default ``cancel_policy = "interrupt"``, R30): the work is not done. Part B cancels a server
that only learns of cancels through ``CoTestCancel`` and never asks: ``Finish_`` still says
RPC_E_CALL_CANCELED, yet the work *was* done -- the client sees it when it asks the server.

    python examples/cancel_async_call.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import comsim
import comsim.testing
from comsim import hresult

T0 = time.monotonic()
LINES: list[str] = []


def say(text: str) -> None:
    """Print one timeline line, tagged with the apartment that runs it."""
    apt = comsim.current_apartment()
    line = f"[{apt.name if apt else 'main'}] {text}"
    LINES.append(line)
    print(f"{(time.monotonic() - T0) * 1000:6.1f} ms  {line}\n", end="")  # one write


class IAccount(comsim.Interface):
    async def Deposit(self, amount: int, started: comsim.ISynchronize) -> int: ...
    async def Balance(self) -> int: ...


AsyncIAccount = comsim.async_interface(IAccount)


class Account(comsim.CoClass, IAccount):
    """cancel_policy "interrupt" (the default): a cancel interrupts the running method."""

    def __init__(self) -> None:
        super().__init__()
        self.balance = 0

    async def Deposit(self, amount: int, started: comsim.ISynchronize) -> int:
        say(f"{type(self).__name__}.Deposit({amount}) starts")
        started.Signal()  # tell the client the call is running
        try:
            await asyncio.sleep(0.05)  # the work takes a while
        except asyncio.CancelledError:
            say("Deposit interrupted by the cancel: no money moved")
            raise
        self.balance += amount
        say(f"Deposit done: balance = {self.balance}")
        return self.balance

    async def Balance(self) -> int:
        return self.balance


class StubbornAccount(Account):
    """cancel_policy "cooperative": only CoTestCancel would tell it -- and it never asks."""

    cancel_policy = "cooperative"


async def cancel_one(rt: comsim.Runtime, cls: type[Account], tag: str) -> dict[str, Any]:
    client = await rt.create_sta("client" + tag)
    server = await rt.create_sta("server" + tag)

    async def make() -> comsim.MarshalStream:
        return comsim.marshal_interface(cls(), IAccount)

    stream = await server.run(make)

    async def use() -> dict[str, Any]:
        account = comsim.unmarshal_interface(stream)
        factory = account.QueryInterface(comsim.ICallFactory)
        call = factory.CreateCall(AsyncIAccount)
        factory.Release()
        started = comsim.ManualResetEvent()
        call.Begin_Deposit(100, started)
        say("Begin_Deposit(100) -> S_OK")
        await started.Wait(0, comsim.INFINITE)  # the server is running it now

        # step 1
        cancel = call.QueryInterface(comsim.ICancelMethodCalls)
        say("step 1: call.QueryInterface(ICancelMethodCalls)")
        # step 2
        cancel_hr = await cancel.Cancel(0)  # 0: do not wait for the server to acknowledge
        say(f"step 2: Cancel(0) -> {hresult.name(cancel_hr)}")
        test_hr = cancel.TestCancel()
        say(f"        TestCancel() -> {hresult.name(test_hr)}")
        cancel.Release()
        say("        cancel.Release()")
        try:
            call.Begin_Deposit(1, started)
            begin_hr = hresult.S_OK
        except comsim.COMError as exc:
            begin_hr = exc.hresult
        pending = begin_hr == hresult.RPC_E_CALL_PENDING  # same value as RPC_S_CALLPENDING
        say("        Begin_ before Finish_ -> "
            + ("RPC_E_CALL_PENDING" if pending else hresult.name(begin_hr)))
        # step 3
        try:
            await call.Finish_Deposit()
            finish_hr = hresult.S_OK
        except comsim.COMError as exc:
            finish_hr = exc.hresult
        say(f"step 3: Finish_Deposit() -> {hresult.name(finish_hr)}")
        call.Release()

        # no guarantee the server stopped: ask it (this call queues behind Deposit, R2)
        balance = await account.Balance()
        say(f"asked the server: balance = {balance}")
        account.Release()
        return {"cancel": cancel_hr, "test_cancel": test_hr, "begin_again": begin_hr,
                "finish": finish_hr, "balance": balance}

    return await client.run(use)


async def main() -> dict[str, Any]:
    global T0
    T0 = time.monotonic()
    LINES.clear()
    out: dict[str, Any] = {}
    async with comsim.Runtime() as rt:
        for tag, cls, title in (("A", Account, "the cancel interrupts the server"),
                                ("B", StubbornAccount, "the server ignores the cancel")):
            print(f"--- part {tag}: {title}")
            with comsim.testing.capture_trace() as events:
                part = await cancel_one(rt, cls, tag)
            part["stages"] = [e["stage"] for e in events.events("call.cancelled")]
            part["dropped"] = [e["hresult"] for e in events.events("call.reply_dropped")]
            print(f"          trace: call.cancelled stage={part['stages']}, late reply dropped:"
                  f" {[hresult.name(h) for h in part['dropped']]}")
            out[tag] = part
    out["lines"] = list(LINES)
    return out


if __name__ == "__main__":
    asyncio.run(main())
