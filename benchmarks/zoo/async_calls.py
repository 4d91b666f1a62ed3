"""Zoo scenarios about asynchronous calls: a cancel landing between dispatch and the server's
first ``CoTestCancel`` (R28-R30), a completion signal racing ``Finish_`` (R23, R24), and a
request overtaken via a third apartment."""

from __future__ import annotations

from typing import Any

import comsim
from comsim import hresult as hr

from ._common import ILog, Log, publish


# ---------------------------------------------------------------- cancel vs. first CoTestCancel
class IJob(comsim.Interface):
    async def Run(self, n: int) -> int: ...


AsyncIJob = comsim.async_interface(IJob)


class Job(comsim.CoClass, IJob):
    """A cooperative server (R30): it reserves a slot, logs (a COM wait), then checks
    ``CoTestCancel`` -- and, the planted bug, returns on a cancel without giving the slot
    back."""

    cancel_policy = "cooperative"

    def __init__(self, log: Any) -> None:
        super().__init__()
        self.log = log
        self.reserved = 0
        self.done = 0

    async def Run(self, n: int) -> int:
        self.reserved += 1
        await self.log.Note("reserved")  # the cancel may land here
        if comsim.CoTestCancel() == hr.RPC_E_CALL_CANCELED:
            return -1  # forgot: self.reserved -= 1
        self.done += 1
        self.reserved -= 1
        return n


async def cancel_before_testcancel(rt: comsim.Runtime) -> str:
    """R29/R30: a ``Cancel`` that reaches the server after dispatch but before its first
    ``CoTestCancel`` finds the cooperative server's buggy early return.

    ``client`` begins ``Run`` on ``worker``'s Job, then (one synchronous call to ``audit``
    later) cancels it with ``Cancel(0)`` and finishes. Job reserves a slot, notes it in
    ``audit``'s log and only then tests for a cancel; its early return leaks the slot.

    Depth 2. Under the default order the cancel is sent after Job's ``Note`` is answered, so
    it reaches a server already past ``CoTestCancel`` (stage ``running`` or ``finished``,
    slot released). The bug needs (1) the request dispatched before the cancel arrives (else
    stage ``queued``: never run) and (2) the cancel delivered to ``worker`` before the reply
    of ``Note``: the client's ``Ping`` reply must overtake the ``Note`` request at ``audit``'s
    side of the race, then the cancel overtake ``Note``'s reply.
    """
    worker, audit, client = [await rt.create_sta(n) for n in ("worker", "audit", "client")]
    log_stream = await publish(audit, Log, ILog)
    keep: dict[str, Any] = {}

    async def make() -> comsim.MarshalStream:
        keep["job"] = job = Job(comsim.unmarshal_interface(log_stream, ILog))
        return comsim.marshal_interface(job, IJob)

    stream = await worker.run(make)

    async def use() -> str:
        factory = comsim.unmarshal_interface(stream).QueryInterface(comsim.ICallFactory)
        call: Any = factory.CreateCall(AsyncIJob)
        call.Begin_Run(7)
        await comsim.unmarshal_interface(log_stream, ILog).Note("client waits")
        code = await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(0)
        try:
            result = await call.Finish_Run()
        except comsim.COMError as exc:
            result = hr.name(exc.hresult)
        return f"{hr.name(code)}/{result}"

    outcome = await client.run(use)
    job = keep["job"]
    if job.reserved:
        raise AssertionError(f"cancel between dispatch and CoTestCancel leaked a slot "
                             f"({outcome})")
    return outcome


# ---------------------------------------------------------------- ISynchronize vs. Finish_
class IFetch(comsim.Interface):
    async def Fetch(self) -> str: ...


AsyncIFetch = comsim.async_interface(IFetch)


class Fetcher(comsim.CoClass, IFetch):
    async def Fetch(self) -> str:
        return "data"


async def signal_races_finish(rt: comsim.Runtime) -> str:
    """R23/R24: a completion notification races the caller's own ``Finish_``.

    ``ui`` begins ``Fetch`` on ``net``'s object with a completion sink (R24) whose
    ``Signal`` records "notified"; the UI then does one synchronous call to ``audit`` and,
    the planted bug, decides from that record alone: no notification yet means "still
    running", so it shows a spinner and cancels -- but the call may have ended already and
    its notification only be on the way.

    Depth 2: (1) the reply of the first ``Note`` reaches ``ui`` before ``Fetch``'s reply
    (so the check sees no notification) and (2) ``Fetch``'s reply reaches ``ui`` before the
    second ``Note``'s reply (so ``Cancel(0)`` finds the call complete). Under the default
    order ``Fetch``'s reply is taken in before the first ``Note`` returns.
    """
    net, audit, ui = [await rt.create_sta(n) for n in ("net", "audit", "ui")]
    stream = await publish(net, Fetcher, IFetch)
    log_stream = await publish(audit, Log, ILog)

    class Sink:
        def __init__(self) -> None:
            self.fired = False

        def Signal(self) -> None:
            self.fired = True

    async def use() -> str:
        sink = Sink()
        factory = comsim.unmarshal_interface(stream, IFetch).QueryInterface(comsim.ICallFactory)
        call: Any = factory.CreateCall(AsyncIFetch, outer=sink)
        log = comsim.unmarshal_interface(log_stream, ILog)
        call.Begin_Fetch()
        await log.Note("ui busy")
        if sink.fired:
            return await call.Finish_Fetch()
        await log.Note("spinner")  # the planted bug: the notification may be in flight
        code = await call.QueryInterface(comsim.ICancelMethodCalls).Cancel(0)
        try:
            await call.Finish_Fetch()
        except comsim.COMError:
            pass
        if code == hr.RPC_E_CALL_COMPLETE:
            raise AssertionError("no notification seen, yet the call had completed: "
                                 "the UI cancelled a finished call")
        return f"cancelled: {hr.name(code)}"

    return await ui.run(use)


# ---------------------------------------------------------------- overtaken via a third apartment
class IStore(comsim.Interface):
    async def Put(self, value: str) -> None: ...
    async def Get(self) -> str: ...


AsyncIStore = comsim.async_interface(IStore)


class Store(comsim.CoClass, IStore):
    def __init__(self) -> None:
        super().__init__()
        self.value = "empty"

    async def Put(self, value: str) -> None:
        self.value = value

    async def Get(self) -> str:
        return self.value


class IPeer(comsim.Interface):
    async def Published(self, value: str) -> str: ...


class Peer(comsim.CoClass, IPeer):
    def __init__(self, store: Any) -> None:
        super().__init__()
        self.store = store

    async def Published(self, value: str) -> str:
        return await self.store.Get()


async def request_overtaken(rt: comsim.Runtime) -> str:
    """Causality is not delivery order: ``pub`` begins an asynchronous ``Put`` on ``store``
    and at once tells ``peer`` (synchronously) that the value is published; ``peer`` reads
    it back from ``store``. The planted bug: ``pub`` assumed its earlier request reaches
    ``store`` before anything it causes later.

    Depth 1. One ordering constraint: ``peer``'s ``Get`` request reaches ``store`` before
    ``pub``'s older ``Put`` request (a message from a third apartment overtakes one sent
    earlier). Under the default order (oldest first) ``Put`` always goes first. Note that
    both messages go to the same receiver, ``store``.
    """
    store, peer, pub = [await rt.create_sta(n) for n in ("store", "peer", "pub")]
    sstream = await publish(store, Store, IStore)

    async def make_peer() -> comsim.MarshalStream:
        return comsim.marshal_interface(Peer(comsim.unmarshal_interface(sstream, IStore)),
                                        IPeer, flags=comsim.MSHLFLAGS.TABLESTRONG)

    pstream = await peer.run(make_peer)

    async def publish_value() -> str:
        factory = comsim.unmarshal_interface(sstream, IStore).QueryInterface(
            comsim.ICallFactory)
        call: Any = factory.CreateCall(AsyncIStore)
        call.Begin_Put("v1")
        seen = await comsim.unmarshal_interface(pstream, IPeer).Published("v1")
        await call.Finish_Put()
        return seen

    seen = await pub.run(publish_value)
    if seen != "v1":
        raise AssertionError(f"peer read {seen!r} after pub published 'v1'")
    return seen
