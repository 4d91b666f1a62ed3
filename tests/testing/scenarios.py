"""Scenarios for the exploration tests, importable by name (explore(workers=...) needs that)."""

from __future__ import annotations

from typing import Any

import comsim


class ILog(comsim.Interface):
    async def Log(self, who: str) -> int: ...


class Log(comsim.CoClass, ILog):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    async def Log(self, who: str) -> int:
        self.seen.append(who)
        return len(self.seen)


async def log_in_c(rt: comsim.Runtime) -> tuple[Any, Any, dict[str, Any], Any]:
    """Three STAs a, b, c, with a ``Log`` served in c (in ``log["obj"]``); gives
    ``(a, b, log, caller)``, where ``caller(name)`` is a unit that calls the log twice."""
    a, b, c = [await rt.create_sta(n) for n in ("a", "b", "c")]
    log: dict[str, Any] = {}

    async def serve() -> comsim.MarshalStream:
        log["obj"] = obj = Log()
        return comsim.marshal_interface(obj, ILog, flags=comsim.MSHLFLAGS.TABLESTRONG)

    stream = log["stream"] = await c.run(serve)

    async def caller(name: str) -> None:
        proxy = comsim.unmarshal_interface(stream, ILog)
        await proxy.Log(name + "1")
        await proxy.Log(name + "2")

    return a, b, log, caller


async def two_callers(rt: comsim.Runtime) -> tuple[str, ...]:
    """Three STAs: a and b each call c's object twice, concurrently; the outcome is the order
    in which c saw the calls (which depends on the pump's choices)."""
    a, b, log, caller = await log_in_c(rt)

    import anyio

    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run, caller, "a")
        tg.start_soon(b.run, caller, "b")
    return tuple(log["obj"].seen)


async def fails_when_b_first(rt: comsim.Runtime) -> tuple[str, ...]:
    """``two_callers``, raising when b's first call is served first (a planted bug)."""
    seen = await two_callers(rt)
    if seen[0] == "b1":
        raise AssertionError(f"b first: {seen}")
    return seen


async def fails_when_b_first_else_42(rt: comsim.Runtime) -> int:
    """``fails_when_b_first`` whose other outcome is no tuple: an int."""
    await fails_when_b_first(rt)
    return 42


async def bracketed(rt: comsim.Runtime) -> str:
    """An outcome that reads like rich markup."""
    return "[red]alarm[/red] value [/] here"


async def raises_bracketed(rt: comsim.Runtime) -> None:
    """An exception whose message reads like rich markup."""
    raise KeyError("[/foo] missing")


async def flaky_callers(rt: comsim.Runtime) -> tuple[str, ...]:
    """a and b each call c's object until two calls succeeded; each call fails with
    probability 1/2, drawn from the runtime's seeded generator (``Runtime.inject_fault``),
    so the number of steps of a run depends on the seed."""
    rt.inject_fault("Log", comsim.hresult.E_FAIL, probability=0.5)
    a, b, log, _ = await log_in_c(rt)

    async def caller(name: str) -> None:
        proxy = comsim.unmarshal_interface(log["stream"], ILog)
        done = 0
        while done < 2:
            try:
                await proxy.Log(f"{name}{done}")
                done += 1
            except comsim.COMError:
                pass

    import anyio

    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run, caller, "a")
        tg.start_soon(b.run, caller, "b")
    return tuple(log["obj"].seen)
