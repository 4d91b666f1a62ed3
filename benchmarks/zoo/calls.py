"""Zoo scenarios about synchronous calls: re-entrancy (R2), lost updates in the MTA (R3),
check-then-act across apartments."""

from __future__ import annotations

from typing import Any

import comsim

from ._common import ILog, Log, publish, together


# ---------------------------------------------------------------- re-entrancy (R2)
class IAccount(comsim.Interface):
    async def Transfer(self, amount: int) -> None: ...
    async def Audit(self) -> tuple[int, int]: ...


class Account(comsim.CoClass, IAccount):
    """Two balances that must always sum to 100. ``Transfer`` moves money in two steps and,
    between them, notes the transfer in a log: a synchronous call, so a COM wait, so the STA
    may start another queued call meanwhile (R2). The planted bug: the half-done transfer is
    visible to that nested call."""

    def __init__(self, log: Any) -> None:
        super().__init__()
        self.log = log
        self.a, self.b = 100, 0

    async def Transfer(self, amount: int) -> None:
        self.a -= amount
        await self.log.Note(f"moving {amount}")  # COM wait with the books unbalanced
        self.b += amount

    async def Audit(self) -> tuple[int, int]:
        return self.a, self.b


async def reentrant_half_update(rt: comsim.Runtime) -> tuple[int, int]:
    """R2: an STA's object is re-entered while its method waits in a COM call.

    ``bank`` (STA) holds an Account; ``teller`` calls ``Transfer``, which notes the transfer
    in ``audit``'s log between its two steps; ``auditor`` calls ``Audit`` and checks the sum.

    Depth 1. The auditor's unit is started first, so under the default order its ``Audit``
    request reaches ``bank`` before ``Transfer``'s and runs on an idle STA. The bug needs one
    ordering: ``Audit`` reaches ``bank`` after ``Transfer`` has been dispatched -- it then
    finds ``bank`` in ``Transfer``'s COM wait and is started nested on it, before the reply
    from ``audit`` (which needs more deliveries, so it comes later in every order that puts
    ``Audit`` behind ``Transfer``'s dispatch).
    """
    bank, audit, teller, auditor = [await rt.create_sta(n)
                                    for n in ("bank", "audit", "teller", "auditor")]
    log_stream = await publish(audit, Log, ILog)

    async def make_account() -> Account:
        return Account(comsim.unmarshal_interface(log_stream, ILog))

    acct_stream = await bank.run(_marshal_from, make_account, IAccount)

    async def do_transfer() -> None:
        await comsim.unmarshal_interface(acct_stream, IAccount).Transfer(30)

    async def do_audit() -> tuple[int, int]:
        return await comsim.unmarshal_interface(acct_stream, IAccount).Audit()

    (a, b), _ = await together((auditor, do_audit, ()), (teller, do_transfer, ()))
    if a + b != 100:
        raise AssertionError(f"Audit saw a half-done transfer: a={a}, b={b}")
    return a, b


async def _marshal_from(make: Any, iface: type) -> comsim.MarshalStream:
    return comsim.marshal_interface(await make(), iface, flags=comsim.MSHLFLAGS.TABLESTRONG)


# ---------------------------------------------------------------- lost update (R3)
class ICounter(comsim.Interface):
    async def Get(self) -> int: ...
    async def Set(self, value: int) -> None: ...


class Counter(comsim.CoClass, ICounter):
    """A counter in the MTA: calls run concurrently, nothing is serialized (R3)."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    async def Get(self) -> int:
        return self.value

    async def Set(self, value: int) -> None:
        self.value = value


async def lost_update_mta(rt: comsim.Runtime) -> int:
    """R3: two callers increment an MTA counter with Get then Set; one update is lost.

    ``left`` and ``right`` (STAs) each read the counter and write back the value plus one.

    Depth 2 (an atomicity violation). ``right`` first makes two unrelated calls to
    ``audit``, so under the default order ``left``'s Get/Set pair is served before
    ``right``'s Get. The bug needs both (1) ``right``'s Get delivered before ``left``'s Set
    and (2) ``left``'s Get delivered before ``right``'s Set -- two ordering constraints (PCT's
    receiver priorities can satisfy both at once: ``left`` starved after its Get).
    """
    audit = await rt.create_sta("audit")
    left, right = await rt.create_sta("left"), await rt.create_sta("right")
    keep: dict[str, Any] = {}
    cstream = await publish(rt.mta, Counter, ICounter, keep)
    lstream = await publish(audit, Log, ILog)

    async def bump(warmup: int) -> None:
        for _ in range(warmup):
            await comsim.unmarshal_interface(lstream, ILog).Note("bump")
        counter = comsim.unmarshal_interface(cstream, ICounter)
        value = await counter.Get()
        await counter.Set(value + 1)

    await together((left, bump, (0,)), (right, bump, (2,)))
    value = keep["obj"].value
    if value != 2:
        raise AssertionError(f"lost update: two increments gave {value}")
    return value
