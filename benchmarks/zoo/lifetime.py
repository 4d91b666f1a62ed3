"""Zoo scenarios about lifetime and message filters: a GIT revoke racing a get (R10), an
apartment shutdown racing a call (R18), a rejection racing a retry (R16)."""

from __future__ import annotations

from typing import Any

import comsim
from comsim import hresult as hr

from ._common import ILog, Log, publish, together


class IFlag(comsim.Interface):
    async def Get(self) -> bool: ...
    async def Set(self, value: bool) -> None: ...


class Flag(comsim.CoClass, IFlag):
    def __init__(self) -> None:
        super().__init__()
        self.value = True

    async def Get(self) -> bool:
        return self.value

    async def Set(self, value: bool) -> None:
        self.value = value


async def git_revoke_races_get(rt: comsim.Runtime) -> str:
    """R10: a ``RevokeInterfaceFromGlobal`` races a ``GetInterfaceFromGlobal``.

    ``owner`` registered a Log in the GIT and published "registered" in ``registry``'s flag.
    ``reader`` checks the flag, then gets the interface from the GIT; ``owner`` revokes the
    cookie and then (the planted bug: in the wrong order) clears the flag. The reader does
    one warm-up call first, so by default it checks after the flag is cleared.

    Depth 2: (1) the reader's ``Get`` of the flag reaches ``registry`` before the owner's
    ``Set(False)`` and (2) the owner's revoke (its unit's start) happens before the reader's
    GIT get (the reader's flag reply delivered after the owner's unit started).
    """
    owner, registry, reader, audit = [await rt.create_sta(n)
                                      for n in ("owner", "registry", "reader", "audit")]
    fstream = await publish(registry, Flag, IFlag)
    lstream = await publish(audit, Log, ILog)

    async def register() -> int:
        return rt.git.RegisterInterfaceInGlobal(Log(), ILog)

    cookie = await owner.run(register)

    async def revoke() -> None:
        rt.git.RevokeInterfaceFromGlobal(cookie)
        await comsim.unmarshal_interface(fstream, IFlag).Set(False)

    async def read() -> str:
        await comsim.unmarshal_interface(lstream, ILog).Note("warm-up")
        if not await comsim.unmarshal_interface(fstream, IFlag).Get():
            return "not registered"
        try:
            log = rt.git.GetInterfaceFromGlobal(cookie, ILog)
        except comsim.COMError as exc:
            raise AssertionError(f"flag said registered, GIT said {hr.name(exc.hresult)}"
                                 ) from None
        await log.Note("read")
        return "read"

    _, got = await together((owner, revoke, ()), (reader, read, ()))
    return got


class IWork(comsim.Interface):
    async def Work(self) -> str: ...


class Worker(comsim.CoClass, IWork):
    async def Work(self) -> str:
        return "worked"


async def shutdown_races_call(rt: comsim.Runtime) -> str:
    """R18: an apartment's shutdown races a call into it.

    ``client`` registers as a user of ``pool`` (``Set(True)`` on ``registry``'s flag), then
    calls ``pool``'s Worker; ``ctl``, after two warm-up calls, reads the flag and, if no one
    uses ``pool``, shuts it down. The planted bug: check (the flag) and act (the shutdown)
    are apart, and a client may register and call in between.

    Depth 2: (1) ``ctl``'s ``Get`` reaches ``registry`` before ``client``'s ``Set(True)``
    (the client starved, ``ctl`` ahead by its two warm-ups) and (2) ``ctl`` resumes and shuts
    ``pool`` down before ``client``'s ``Work`` is served. Under the default order ``client``
    registers first; ``ctl`` reads True and leaves ``pool`` alone.
    """
    pool, registry, ctl, client, audit = [await rt.create_sta(n) for n in
                                          ("pool", "registry", "ctl", "client", "audit")]
    keep: dict[str, Any] = {}
    fstream = await publish(registry, Flag, IFlag, keep)
    wstream = await publish(pool, Worker, IWork)
    lstream = await publish(audit, Log, ILog)

    async def reset() -> None:
        keep["obj"].value = False

    await registry.run(reset)

    async def control() -> str:
        await comsim.unmarshal_interface(lstream, ILog).Note("ctl warm-up")
        await comsim.unmarshal_interface(lstream, ILog).Note("ctl warm-up")
        if await comsim.unmarshal_interface(fstream, IFlag).Get():
            return "kept"
        await pool.shutdown()
        return "shut down"

    async def use() -> str:
        await comsim.unmarshal_interface(fstream, IFlag).Set(True)
        try:
            return await comsim.unmarshal_interface(wstream, IWork).Work()
        except comsim.COMError as exc:
            raise AssertionError(f"the pool shut down under a client that had registered: "
                                 f"{hr.name(exc.hresult)}") from None

    kept, got = await together((ctl, control, ()), (client, use, ()))
    return f"{kept}/{got}"


class IBusy(comsim.Interface):
    async def Long(self) -> None: ...
    async def Quick(self) -> str: ...


class Busy(comsim.CoClass, IBusy):
    def __init__(self, log: Any) -> None:
        super().__init__()
        self.log = log

    async def Long(self) -> None:
        await self.log.Note("long")  # a COM wait: the STA is busy with a call pending

    async def Quick(self) -> str:
        return "quick"


class BusyFilter(comsim.IMessageFilter):
    """The server's filter: RETRYLATER while a call of another causality is pending."""

    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           interface_info: Any) -> int:
        if call_type == comsim.CALLTYPE_TOPLEVEL_CALLPENDING:
            return comsim.SERVERCALL_RETRYLATER
        return comsim.SERVERCALL_ISHANDLED


class RetryNow(comsim.IMessageFilter):
    """The caller's filter: retry at once, counting; the planted bug is the caller's belief
    that one retry is always enough."""

    def __init__(self) -> None:
        self.rejections = 0

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        self.rejections += 1
        return 0 if self.rejections < 3 else -1  # bounded, so every search ends


async def rejection_races_retry(rt: comsim.Runtime) -> str:
    """R16: a caller's immediate retry races the end of the callee's busy period.

    ``srv`` (STA, filter: RETRYLATER while busy in a COM wait) serves ``Long`` for ``a``
    (a call that notes into ``audit``'s log: a COM wait) and ``Quick`` for ``b``, whose
    filter retries a rejected call at once. The planted bug: ``b`` asserts it needed at most
    one retry.

    Depth 1. Under the default order ``b``'s first attempt reaches ``srv`` while ``Long``
    waits (rejected once, as designed: that is the default, not a constraint), and its retry
    after ``Note``'s reply, so it is served. One ordering constraint: the retry reaches
    ``srv`` before ``Note``'s reply does (both go to ``srv``; they come from different
    senders, ``b`` and ``audit``).
    """
    srv, audit, a, b = [await rt.create_sta(n) for n in ("srv", "audit", "a", "b")]
    lstream = await publish(audit, Log, ILog)

    async def make() -> comsim.MarshalStream:
        comsim.CoRegisterMessageFilter(BusyFilter())
        return comsim.marshal_interface(Busy(comsim.unmarshal_interface(lstream, ILog)),
                                        IBusy, flags=comsim.MSHLFLAGS.TABLESTRONG)

    stream = await srv.run(make)

    async def long() -> str:
        await comsim.unmarshal_interface(stream, IBusy).Long()
        return "long"

    async def quick() -> str:
        f = RetryNow()
        comsim.CoRegisterMessageFilter(f)
        try:
            got = await comsim.unmarshal_interface(stream, IBusy).Quick()
        except comsim.COMError:
            got = "gave up"
        if f.rejections > 1:
            raise AssertionError(f"rejected {f.rejections} times: the retry raced the end "
                                 f"of srv's busy period and lost")
        return f"{got} after {f.rejections} rejection(s)"

    _, got = await together((a, long, ()), (b, quick, ()))
    return got
