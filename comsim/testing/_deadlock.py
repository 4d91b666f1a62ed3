"""``Deadlock`` and ``Wait``: what the virtual-time loop raises when nothing can ever run again,
and the report of who waits on what.

``comsim._runtime.vtloop`` decides that the loop is deadlocked (its docstring gives the rule);
this module explains it. It looks at every task of the loop as it stands: where the task runs
(the ``WHERE`` of its context, read from the callback it left on the future it waits for),
and what it waits on (its chain of coroutines, ``cr_await`` by ``cr_await``, down to that
future). A comsim wait is named from the frame that makes it (a synchronous call, ``Finish_``,
``ISynchronize.Wait``, ``Cancel``'s or ``CoCancelCall``'s grace, ``Apartment.run``); anything
else is a non-COM await, named by what the user's innermost code awaited.
"""

from __future__ import annotations

import asyncio
import os
import types
from typing import Any, NamedTuple

import anyio

from .._core.text import safe_repr
from .._runtime import callobj, cancel, client, cofuncs, comwait, events, facets, jobs, server
from .._runtime.context import LIVE_RUNTIMES, UNDER, WHERE
from .._runtime.vtloop import VirtualTimeLoop
from ._waitfor import MAX_CYCLES, wait_for_cycles

__all__ = ["MAX_CYCLES", "Deadlock", "Wait", "explain"]


class Wait(NamedTuple):
    """One line of a deadlock report: in ``apartment`` (its name; None for code in no
    apartment), ``unit`` (the method of an incoming call, the function of an
    ``Apartment.run`` unit, or the function of code in no apartment) waits on ``waits_on``."""

    apartment: str | None
    unit: str
    waits_on: str


class Deadlock(RuntimeError):
    """Nothing can ever run again on the virtual-time loop (no callback ready, no timer, no
    message in flight) while the scenario is unfinished: raised by ``comsim.testing.run``.

    ``waits``: every started unit that waits, and code in no apartment that waits, then the
    units still queued behind them (``Wait`` tuples, in the order of the message).
    ``cycles``: the wait-for cycles between apartments, each a list of apartment names whose
    last is its first; at most ``MAX_CYCLES`` (the message says when the search stopped). An
    apartment named alike in another runtime on the loop is ``"name (runtime N)"`` (N from 1).
    """

    def __init__(self, message: str, waits: list[Wait] | None = None,
                 cycles: list[list[str]] | None = None) -> None:
        super().__init__(message)
        self.waits: list[Wait] = list(waits or [])
        self.cycles: list[list[str]] = list(cycles or [])


Wait.__module__ = Deadlock.__module__ = "comsim.testing"  # where users find them


# ------------------------------------------------------------------ the frames that wait
_SYNC_CALL = client.sync_call.__code__
_RETRY = client._retry.__code__
_FINISH = callobj.CallObject._finish.__code__
_FACET_WAIT = facets._SyncFacet.Wait.__code__
_EVENT_WAIT = events._Event.Wait.__code__
_CANCEL_GRACE = cancel._await_cancel.__code__
_CANCEL_THERE = cancel.cancel_call.__code__  # a cancel from another loop than the call's client
_CO_CANCEL = cofuncs.CoCancelCall.__code__
_RUN = jobs.RunUnits.run.__code__
_RUN_JOB = jobs.RunUnits._run_job.__code__
_SERVER_TASK = server.server_task.__code__
_OVER = {comwait.ComWaits._wait_for_top.__code__, comwait.ComWaits._await_gate.__code__}
_WAITS = {_SYNC_CALL, _RETRY, _FINISH, _EVENT_WAIT, _CANCEL_GRACE, _CANCEL_THERE, _CO_CANCEL,
          _RUN}

#: code under these directories is the libraries' (comsim's, asyncio's, anyio's), not the user's
_LIBRARIES = tuple(os.path.dirname(path) + os.sep for path in (
    os.path.dirname(client.__file__ or ""), asyncio.__file__ or "", anyio.__file__ or ""))


def _is_user(code: types.CodeType) -> bool:
    return not code.co_filename.startswith(_LIBRARIES)


def _name(code: types.CodeType) -> str:
    return code.co_qualname


def _chain(task: asyncio.Task[Any]) -> tuple[list[tuple[Any, types.FrameType]], Any]:
    """The task's coroutines with their frames, outermost first, and what the innermost one
    awaits (a future, or an object that is no coroutine)."""
    frames: list[tuple[Any, types.FrameType]] = []
    obj: Any = task.get_coro()
    end: Any = None
    while obj is not None:
        frame = (getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
                 or getattr(obj, "ag_frame", None))
        if frame is None:
            break
        frames.append((obj, frame))
        nxt = getattr(obj, "cr_await", None)
        if nxt is None:
            nxt = getattr(obj, "gi_yieldfrom", None)
        if not isinstance(nxt, (types.CoroutineType, types.GeneratorType)):
            end = nxt
            break
        obj = nxt
    waiter = getattr(task, "_fut_waiter", None)
    return frames, waiter if waiter is not None else end


def _where(task: asyncio.Task[Any], fut: Any, var: Any = WHERE) -> Any:
    """The task's ``WHERE`` (or another of comsim's context variables, ``var``): from its
    context (Python 3.12+), or from the context of the wake-up it left on ``fut``."""
    get_context = getattr(task, "get_context", None)
    if get_context is not None:
        return get_context().get(var)
    for cb, ctx in getattr(fut, "_callbacks", None) or ():
        if getattr(cb, "__self__", None) is task:
            return ctx.get(var)
    return None


def _call_text(call: Any) -> str:
    return f"call #{call.id} {call.spec.interface.__name__}.{call.method} to '{call.server.name}'"


def _incoming_text(call: Any) -> str:
    return (f"{call.spec.interface.__name__}.{call.method} "
            f"(call #{call.id} from '{call.client.name}')")


def _fn_name(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def _unit_text(unit: Any) -> str:
    """A unit of an STA's scheduler (``comsim._core.sta.Unit``)."""
    payload = unit.payload
    if hasattr(payload, "spec"):
        return _incoming_text(payload)
    return f"run {_fn_name(payload.fn)}"


def _awaited_text(obj: Any, fut: Any) -> str:
    """What a user frame awaits: a coroutine (with its ``self``), or the future itself."""
    if isinstance(obj, (types.CoroutineType, types.GeneratorType)):
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        code = getattr(obj, "cr_code", None) or getattr(obj, "gi_code", None)
        text = f"{_name(code)}()" if code is not None else repr(obj)
        owner = frame.f_locals.get("self") if frame is not None else None
        return f"{text} of {owner!r}" if owner is not None else text
    return repr(fut)


def _kind(fut: Any) -> str:
    t = type(fut)
    if isinstance(fut, asyncio.Future):
        return "asyncio.Future" if t.__module__ in ("_asyncio", "asyncio.futures") else (
            f"{t.__module__}.{t.__qualname__}")
    return f"{t.__module__}.{t.__qualname__}"


class _Line(NamedTuple):
    key: tuple[Any, ...]
    wait: Wait
    edge: Any  # the apartment waited on, for the wait-for graph (None: none known)
    apt: Any = None  # the apartment that waits


def _describe(task: asyncio.Task[Any], order: dict[Any, int], labels: dict[Any, str]
              ) -> _Line | None:
    frames, fut = _chain(task)
    where = _where(task, fut)
    neutral = where is not None and where.apartment._neutral
    if neutral:  # NA code (R5) runs on the thread under it, in that thread's unit, if any
        where = _where(task, fut, UNDER)
    apt = where.apartment if where is not None else None
    if apt is not None and any(slot is fut for slot in apt._idle):
        return None  # an idle server task: no unit
    codes = [f.f_code for _o, f in frames]
    user = [i for i, c in enumerate(codes) if _is_user(c)]
    # what runs: the unit, or the outermost user function of code in no apartment
    if where is None:
        unit = _entry(codes, user) if codes else repr(task)
    elif where.incoming is not None:
        unit = _incoming_text(where.incoming)
    else:
        job = next((f.f_locals.get("job") for _o, f in frames if f.f_code is _RUN_JOB), None)
        if job is None and where.unit is not None:
            job = where.unit.payload
        unit = f"run {_fn_name(job.fn)}" if job is not None else f"code in '{where.apartment.name}'"
    if where is not None and codes and codes[0] not in (_SERVER_TASK, _RUN_JOB):
        unit += f" (its task {_entry(codes, user)})"
    if neutral:
        unit += ", in NA code"
    # what it waits on: the innermost comsim wait, unless user code runs deeper
    waits = [i for i, c in enumerate(codes) if c in _WAITS]
    inner_user = user[-1] if user else -1
    waits_on, edge = _wait_text(frames, waits[-1], where, fut) if (
        waits and waits[-1] > inner_user) else (_non_com(frames, inner_user, fut), None)
    sched = apt._sched if apt is not None else None
    pos = sched.stack.index(where.unit) if (sched is not None and where.unit in sched.stack) \
        else 0
    seq = (codes[:1] != [_SERVER_TASK] and codes[:1] != [_RUN_JOB], _task_number(task))
    key = (0, order.get(apt, 0), pos, seq) if apt is not None else (1, 0, 0, seq)
    name = labels.get(apt, apt.name) if apt is not None else None
    return _Line(key, Wait(name, unit, waits_on), edge, apt)


def _safe_describe(task: asyncio.Task[Any], order: dict[Any, int], labels: dict[Any, str]
                   ) -> _Line | None:
    try:
        return _describe(task, order, labels)
    except Exception as exc:  # a report that cannot say more must still report the deadlock
        return _Line((3, 0, 0, (True, 0)),
                     Wait(None, repr(task), f"not described: {safe_repr(exc)}"), None)


def _entry(codes: list[types.CodeType], user: list[int]) -> str:
    """The function a task runs: its outermost user code, else its outermost code that is not
    asyncio's or anyio's (their task wrappers)."""
    if user:
        return _name(codes[user[0]])
    code = next((c for c in codes if c.co_filename.startswith(_LIBRARIES[0])), codes[0])
    return "Apartment.run" if code is _RUN else _name(code)


def _task_number(task: asyncio.Task[Any]) -> int:
    name = task.get_name()
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _wait_text(frames: list[tuple[Any, types.FrameType]], i: int, where: Any, fut: Any
               ) -> tuple[str, Any]:
    code = frames[i][1].f_code
    loc = frames[i][1].f_locals
    apt = where.apartment if where is not None else None
    com = (apt is not None and apt._sched is not None and where.unit is not None
           and where.unit in apt._sched.stack)
    what = "a COM wait" if com else "a wait"  # R2: only an STA's unit waits in a COM wait
    over = any(f.f_code in _OVER for _o, f in frames[i + 1:])
    edge: Any = None
    if code is _SYNC_CALL:
        call = loc["call"]
        text, edge = f"{what} on {_call_text(call)}", call.server
    elif code is _FINISH:
        call = loc["call"]
        text, edge = f"{what} in Finish_{call.method} on {_call_text(call)}", call.server
    elif code is _EVENT_WAIT:
        facet = next((f.f_locals.get("self") for _o, f in frames[:i]
                      if f.f_code is _FACET_WAIT), None)
        call = getattr(getattr(facet, "_owner", None), "_call", None)
        target = f"the call object of {_call_text(call)}" if call is not None else \
            repr(loc.get("self"))
        text = f"{what} in ISynchronize.Wait on {target}"
        edge = call.server if call is not None else None
    elif code in (_CANCEL_GRACE, _CANCEL_THERE, _CO_CANCEL):
        call = loc["call"]
        via = "CoCancelCall" if any(f.f_code is _CO_CANCEL for _o, f in frames[:i + 1]) \
            else "Cancel"
        text, edge = (f"{what} in the grace period of {via} on {_call_text(call)}",
                      call.server)
    elif code is _RETRY:
        call = loc["call"]
        text = f"{what} in a RetryRejectedCall delay before resending {_call_text(call)}"
    else:  # _RUN: Apartment.run from another apartment, not a COM wait (R2)
        target, job = loc["self"], loc["job"]
        text, edge = (f"a non-COM await on Apartment.run of {_fn_name(job.fn)} in "
                      f"'{target.name}'"), target
        if loc.get("_com_wait") and job.args:  # CoCreateInstance's creation unit (R33)
            cls = getattr(job.args[0], "__name__", "?")
            text = f"{what} in CoCreateInstance({cls}), made by a unit of '{target.name}'"
        if job.unit is not None and target._sched is not None \
                and job.unit in target._sched.queue:
            text += ", queued there"
    if over:  # the wait has ended; LIFO (R2) holds the unit until those above it end
        text += ", which has ended: it resumes once the units nested above it end (R2)"
        edge = None
    return text, edge


def _non_com(frames: list[tuple[Any, types.FrameType]], inner_user: int, fut: Any) -> str:
    if inner_user < 0:
        inner = _name(frames[-1][1].f_code) if frames else "?"
        return f"a non-COM await in {inner}; innermost: {_kind(fut)}"
    nxt = frames[inner_user + 1][0] if inner_user + 1 < len(frames) else None
    where = _name(frames[inner_user][1].f_code)
    return (f"a non-COM await on {_awaited_text(nxt, fut)} (in {where}); "
            f"innermost: {_kind(fut)}")


def _queued(runtimes: list[Any], order: dict[Any, int], labels: dict[Any, str]
            ) -> list[_Line]:
    lines: list[_Line] = []
    for rt in runtimes:
        for apt in rt._apartments.values():
            sched = apt._sched
            if sched is None:
                continue
            top = sched.top
            for n, unit in enumerate(sched.queue):
                held = unit.held_by
                if held is not None and not held.ready:
                    on = (f"held by the message filter of '{apt.name}' "
                          "(MessagePending: PENDINGMSG_WAITNOPROCESS) during "
                          f"{_unit_text(held.unit)}'s wait on "
                          f"{_call_text(held.payload) if held.payload else 'a COM wait'}")
                else:
                    on = (f"queued behind {_unit_text(top)}" if top is not None
                          else "queued")
                lines.append(_Line((2, order.get(apt, 0), n, (False, 0)),
                                   Wait(labels.get(apt, apt.name), _unit_text(unit), on),
                                   None, apt))
    return lines


def _labels(runtimes: list[Any]) -> dict[Any, str]:
    """Each apartment's name in the report: its own, or "name (runtime N)" if not unique."""
    owners: dict[str, set[int]] = {}
    for n, rt in enumerate(runtimes, start=1):
        for apt in rt._apartments.values():
            owners.setdefault(apt.name, set()).add(n)
    return {apt: apt.name if len(owners[apt.name]) < 2 else f"{apt.name} (runtime {n})"
            for n, rt in enumerate(runtimes, start=1) for apt in rt._apartments.values()}


def explain(loop: asyncio.AbstractEventLoop) -> Deadlock:
    """The ``Deadlock`` for ``loop`` as it stands (called by the loop as it finds itself
    deadlocked, before anything is cancelled)."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    runtimes = [rt for rt in LIVE_RUNTIMES if getattr(rt, "_host_loop", None) is loop]
    order: dict[Any, int] = {}
    for rt in runtimes:
        for apt in rt._apartments.values():
            order[apt] = len(order)
    labels = _labels(runtimes)
    lines = [ln for t in tasks if (ln := _safe_describe(t, order, labels)) is not None]
    lines.sort(key=lambda ln: ln.key)
    queued = _queued(runtimes, order, labels)
    found, more = wait_for_cycles([(line.apt, line.edge) for line in lines], order)
    cycles = [[labels.get(apt, apt.name) for apt in c] for c in found]
    text = [f"deadlock at virtual time {loop.time()!r}: nothing can ever run again (no "
            "callback ready, no timer, no message in flight) and the scenario is unfinished",
            "started units that wait:" if lines else "no started unit waits"]
    text += [_line_text(ln.wait) for ln in lines]
    if queued:
        text.append("queued behind them:")
        text += [_line_text(ln.wait) for ln in queued]
    text += ["wait-for cycle: " + " -> ".join(c) for c in cycles]
    if more:
        text.append(f"(the search for wait-for cycles stopped after {len(cycles)})")
    return Deadlock("\n".join(text), [ln.wait for ln in lines + queued], cycles)


def _line_text(w: Wait) -> str:
    return f"  {w.apartment}: {w.unit}: {w.waits_on}"


VirtualTimeLoop.explain_deadlock = explain
