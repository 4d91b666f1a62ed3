"""An apartment: a loop, the units it runs, and the messages it takes in.

The runtime layer only moves messages and waits; every decision (may this unit start, may this
call run, what does this cancel mean) is asked of the sans-IO core.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._core import hresult as hr
from .._core import rules
from .._core import stub as stubcore
from .._core.constants import PENDINGMSG_WAITDEFPROCESS, ApartmentType
from .._core.hresult import COMError
from .._core.sta import CancelOutgoing, Resume, Start, StaScheduler, Unit, UnitKind, Wait
from .boundary import call_hook
from .comwait import ComWaits
from .context import WHERE, Client, new_where
from .futures import settle
from .hooks import HOOKS
from .jobs import RunUnits, Serving, _Job
from .loop import current_task
from .transport import Transport

#: the classes of the modules above this one, named here for the reader: a call is a
#: ``client.ClientCall``, a stub a ``stubs.Stub``, the runtime a ``runtime.Runtime``
ClientCall = Any
Stub = Any
Runtime = Any

T = TypeVar("T")


#: server tasks kept waiting for calls per apartment; more are started when calls nest or run
#: concurrently, and end when they find this many idle already
MAX_IDLE_SERVER_TASKS = 8


class Apartment(ComWaits, RunUnits):
    """An STA (one simulated thread with one loop) or the MTA.

    Use ``Runtime.create_sta`` and ``Runtime.mta``; do not construct apartments directly.
    """

    #: the neutral apartment (``neutral.NeutralApartment``) says True: it has no loop (R5)
    _neutral = False

    # slots: an apartment is made per ``create_sta``, and an exploration makes thousands
    __slots__ = ("__weakref__", "_accepting", "_at_close", "_closed", "_closed_waiters",
                 "_closing", "_ctx0", "_deferred", "_filter", "_home", "_ident", "_idle",
                 "_inbox", "_loop", "_nested", "_never_ran_cb", "_new_future", "_post", "_rt",
                 "_sched", "_spawned", "_stubs", "_tasks", "_thread", "_transport", "_wake",
                 "_woken", "name", "thread_id", "type")

    def __init__(self, runtime: Runtime, name: str, kind: ApartmentType, thread_id: int) -> None:
        self.name = name
        self.type = kind
        self._rt = runtime
        self._transport: Transport = runtime._transport
        #: the STA's simulated thread id (R31); the MTA gives each unit its own
        self.thread_id = thread_id
        self._sched: StaScheduler | None = StaScheduler() if kind.is_sta else None
        if self._sched is not None:
            self._sched.consult = self._consult_pending
        #: while ``_apply`` carries out an action: the actions that come meanwhile (``_apply``)
        self._nested: list[Any] | None = None
        self._accepting = True  # guarded by the runtime's lock: messages may be posted
        #: messages from other threads, not yet taken in
        self._inbox: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque())
        self._closing = False  # the teardown has begun (set on the apartment's own loop)
        self._closed = False
        self._closed_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = []
        #: ``_never_ran`` bound once: no bound method is made per task
        self._never_ran_cb: Callable[[asyncio.Task[Any]], None] = self._never_ran
        #: running tasks, each with the call or job it was made for (``_never_ran``)
        self._tasks: dict[asyncio.Task[Any], Any] = {}
        self._stubs: dict[int, Stub] = {}
        #: deterministic runtime: the tasks its code made (``context.note_task``)
        self._spawned: weakref.WeakSet[asyncio.Task[Any]] | None = None
        #: what ends with the apartment's teardown, by key (``_end_teardown``)
        self._at_close: dict[Any, Callable[[], None]] = {}
        self._filter: Any = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        #: a new future of the loop (``loop.create_future`` without its Python frame)
        self._new_future: Callable[[], asyncio.Future[Any]] = None  # type: ignore[assignment]
        #: the threaded transport wakes the loop with it to take in the inbox
        self._wake: Callable[[], Any] = None  # type: ignore[assignment]
        self._woken = False  # a wake-up is on its way (the threaded transport's)
        #: apartments whose wake-up waits for this one's drain to reach its last message
        self._deferred: list[Apartment] = []
        self._ident: int | None = None  # the OS thread running the loop (threaded runtime)
        self._thread: threading.Thread | None = None
        #: server tasks waiting for their next call (each a future to hand it over)
        self._idle: list[asyncio.Future[tuple[ClientCall, Unit | None]]] = []
        self._ctx0 = contextvars.Context()  # messages run in this empty context
        #: ``post(fn, *args)``: ``fn(*args)`` delivered in this apartment's loop, False if it
        #: no longer takes messages (R18); the transport's own once it has started it
        self._post: Callable[..., bool] = self._post_through
        self._home = new_where((runtime, self, None, None, None, thread_id))

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("closing" if not self._accepting else "running")
        return f"<Apartment {self.name!r} {self.type.value} {state}>"

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The apartment runs on ``loop``, which runs on the calling thread (the transport's
        ``start`` calls this)."""
        self._loop = loop
        self._ident = threading.get_ident()
        self._new_future = functools.partial(asyncio.Future, loop=loop)

    @property
    def alive(self) -> bool:
        """False once the apartment has begun to shut down."""
        return self._accepting

    # ------------------------------------------------------------------ transport
    def _post_through(self, fn: Callable[..., Any], *args: Any) -> bool:
        """``_post`` until the transport's ``start`` gives the apartment its own: deliver
        ``fn(*args)`` in this apartment's loop, through the runtime's transport
        (``transport``). False if it no longer takes messages (R18)."""
        return self._transport.post(self, fn, args)

    def _run_at_close(self, key: Any, fn: Callable[[], None]) -> bool:
        """From any thread, once ``_post`` has been refused: ``fn()`` runs on this apartment's
        loop with what ends with it (``_at_close``), after whatever its teardown takes in and
        steps meanwhile. False once the teardown has ended: nothing of the apartment runs any
        more, and ``fn`` may run on the caller's thread."""
        with self._rt._lock:
            if self._closed:
                return False
            self._at_close[key] = fn
        return True

    def _spawn(self, coro: Any, payload: tuple[ClientCall, Unit | None] | _Job
               ) -> asyncio.Task[Any]:
        """A task of this apartment for ``payload`` (a new server task's first call and its
        unit, or a run job); it takes itself off ``_tasks`` as its last step (``_done``). A
        server task sets its payload to None as its first step (``server.server_task``)."""
        task = self._loop.create_task(coro, context=contextvars.Context())
        self._tasks[task] = payload
        task.add_done_callback(self._never_ran_cb)
        return task

    def _never_ran(self, task: asyncio.Task[Any]) -> None:
        """A task is done. If it never took its first step (cancelled before it, by the
        teardown or by a cancelled ``run`` caller), it is still in ``_tasks``: its call or job
        is answered here, so that nobody waits for it forever (R18) and its unit ends."""
        payload = self._tasks.pop(task, None)
        if payload is None or type(payload) is Serving:  # started: it answered its calls
            return
        if type(payload) is _Job:
            self._end_unit(payload.unit)
            self._settle_job(payload, False,
                             self._gone_error() if self._closing else asyncio.CancelledError())
        else:  # a new server task's first call: (call, unit)
            call, unit = payload
            HOOKS.answer(self, call, hr.RPC_E_DISCONNECTED)
            self._end_unit(unit)

    def _hand_back(self, slot: asyncio.Future[tuple[ClientCall, Unit | None]]) -> None:
        """An idle server task was cancelled (the teardown) after it had been handed a call
        but before it took it: that call is answered here (R18)."""
        if slot.done() and not slot.cancelled():
            call, unit = slot.result()
            HOOKS.answer(self, call, hr.RPC_E_DISCONNECTED)
            self._end_unit(unit)

    def _done(self) -> None:
        """Called by a task of this apartment as its last step."""
        self._tasks.pop(current_task(self._loop), None)  # type: ignore[arg-type]

    def _at_home(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn`` synchronously with this apartment current (for message filters)."""

        def run() -> T:
            WHERE.set(self._home)
            return fn(*args)

        return contextvars.Context().run(run)

    def _ask_hook(self, default: int, fn: Callable[..., Any], *args: Any) -> int:
        """A message filter's answer, asked at home (``_at_home``). Whatever the filter raises,
        or an answer that is no int, gives ``default`` (traced as ``filter.error``)."""
        return int(call_hook("filter.error", {"apartment": self.name}, default,
                             lambda: int(self._at_home(fn, *args))))

    # ------------------------------------------------------------------ the scheduler's actions
    def _apply(self, actions: list[Any]) -> None:
        """Carry out the scheduler's actions, in order. Actions asked for while one is carried
        out (a call started here that ends at once — rejected, cancelled while queued, its
        object gone — ends its unit, and the scheduler starts the next) are carried out right
        after it, in their order, by the same loop: the order of a recursion, without a stack
        level per unit, which hundreds of queued calls ending so would overflow (R2, R16)."""
        nested = self._nested
        if nested is not None:
            nested.extend(actions)
            return
        todo = actions[::-1]  # the next action last
        self._nested = nested = []
        try:
            while todo:
                a = todo.pop()
                t = type(a)
                if t is Start:
                    self._start_unit(a.unit)
                elif t is Resume:
                    gate = a.wait.gate
                    if gate is not None and not gate.done():
                        gate.set_result(None)
                elif t is CancelOutgoing:
                    call = a.wait.payload
                    if call is not None:
                        HOOKS.cancel_outgoing(call)
                if nested:
                    todo.extend(reversed(nested))
                    nested.clear()
        finally:
            self._nested = None

    def _end_unit(self, unit: Unit | None) -> None:
        if unit is not None and self._sched is not None:
            actions = self._sched.end(unit)
            if actions:
                self._apply(actions)

    def _consult_pending(self, unit: Unit, wait: Wait, nested: bool) -> int:
        """R16: MessagePending, when a run unit would start during an outgoing call."""
        flt = self._filter
        if flt is None:
            return PENDINGMSG_WAITDEFPROCESS
        call: ClientCall | None = wait.payload
        callee = call.server.thread_id if call is not None else 0
        tick = self._rt._ticks_since(call.sent_at) if call is not None else 0
        # a faulty filter must not stop the apartment: it lets the unit in
        return self._ask_hook(PENDINGMSG_WAITDEFPROCESS, flt.MessagePending, callee, tick,
                              rules.pending_type(nested))

    def _keeps_serving(self, task: asyncio.Task[Any]) -> bool:
        """Whether a server task that has finished a call waits for the next one: not once the
        apartment shuts down, when enough wait already, or while a cancel is pending on it."""
        return not (self._closing or len(self._idle) >= MAX_IDLE_SERVER_TASKS
                    or task.cancelling())


    def new_future(self) -> asyncio.Future[Any]:
        return self._new_future()

    # ------------------------------------------------------------------ units
    def _start_unit(self, unit: Unit) -> None:
        if unit.kind is UnitKind.CALL:
            HOOKS.dispatch(self, unit.payload, unit)
        else:
            job: _Job = unit.payload
            job.task = self._spawn(self._run_job(job, unit), job)

    # ------------------------------------------------------------------ message filters
    def _set_filter(self, flt: Any) -> Any:
        previous, self._filter = self._filter, flt
        return previous

    # ------------------------------------------------------------------ shutdown (R18)
    async def shutdown(self) -> None:
        """End the apartment (R18): its tasks are cancelled, calls to it fail with
        ``RPC_E_DISCONNECTED``, its proxies with ``CO_E_OBJNOTCONNECTED``. Idempotent.

        Raises:
            COMError(E_FAIL): called on the MTA, which shuts down only with its runtime.
        """
        code = rules.shutdown_allowed(self.type, self._rt._closing)
        if code:
            raise COMError(code, "the MTA shuts down only with its runtime; leave the "
                           "`async with Runtime()` block instead")
        await self._shutdown()

    async def _shutdown(self) -> None:
        rt = self._rt
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        with rt._lock:
            first = self._accepting
            self._accepting = False
            closed = self._closed
            if not closed:
                self._closed_waiters.append((loop, done))
        if first:
            self._transport.run_soon(self, self._begin_teardown)
        w = WHERE.get()
        if w is not None and w.apartment is self:
            return  # shutting down from inside: the teardown cancels this very task
        if not closed:
            await done
        # joined even when the teardown ended before this call (an apartment that shut itself
        # down): its thread may still be closing its loop (R18: no thread left behind)
        self._transport.join(self)

    def _begin_teardown(self) -> None:
        self._transport.take_in(self)  # what was posted before shutdown began (R18)
        self._closing = True
        self._drop_queued()
        self._cancel_tasks(0)

    def _drop_queued(self) -> None:
        """The teardown's first step: queued units fail, stubs are disconnected (R18)."""
        if self._sched is not None:
            for unit in list(self._sched.queue):
                self._sched.queue.remove(unit)
                if unit.kind is UnitKind.CALL:
                    HOOKS.answer(self, unit.payload, hr.RPC_E_DISCONNECTED)
                else:
                    self._settle_job(unit.payload, False, self._gone_error())
        for stub in list(self._stubs.values()):
            stub.conn = stubcore.Connection.DISCONNECTED
        self._stubs.clear()

    def _cancel_tasks(self, rounds: int, stalls: int = 0) -> None:
        """The teardown's middle (R18): cancel its tasks and those its code spawned
        (``Transport.tasks_of``), then those that came meanwhile, or again after a grace period
        (``rules.teardown_cancels_again``); then the last step. Idle: ends in this step."""
        own = self._tasks
        tasks = [t for t in own if not t.done()]
        tasks += [t for t in self._transport.tasks_of(self) if t not in own and not t.done()]
        if tasks and rules.teardown_cancels_again(rounds, stalls):
            left = len(tasks)

            def next_round(stalled: int) -> None:
                if timer.cancelled():
                    return  # the round has moved on already
                timer.cancel()
                for t in tasks:
                    t.remove_done_callback(ended)
                self._cancel_tasks(rounds + 1, stalls + stalled)

            def ended(_task: asyncio.Task[Any]) -> None:
                nonlocal left
                left -= 1
                if not left:
                    next_round(0)

            for t in tasks:
                t.cancel()
            for t in tasks:
                t.add_done_callback(ended)
            timer = self._loop.call_later(rules.TEARDOWN_GRACE, next_round, 1,
                                          context=self._ctx0)
            return
        # a task done before the check may not have had its done callback yet (cancelled
        # before its first step): answered here (R18); a unit or call left behind, as gone
        for t, payload in list(own.items()):
            if t.done():
                self._never_ran(t)
            elif type(payload) is _Job:
                self._settle_job(payload, False, self._gone_error())
            elif type(payload) is Serving and payload.call.stage is stubcore.Stage.RUNNING:
                HOOKS.answer(self, payload.call, hr.RPC_E_DISCONNECTED)
        own.clear()
        self._end_teardown()

    def _end_teardown(self) -> None:
        """The teardown's last step, once the apartment's tasks have ended."""
        # what must end with the apartment: the grace periods of its calls' cancels, whose
        # replies it no longer takes in (a CoCancelCall from elsewhere waits on them), and what
        # other threads left to it (``_run_at_close``): it is closed under the same hold of the
        # lock that finds none left
        while True:
            with self._rt._lock:
                if not self._at_close:
                    self._closed = True
                    waiters, self._closed_waiters = self._closed_waiters, []
                    break
                _key, fn = self._at_close.popitem()
            try:
                fn()
            except BaseException as exc:  # a bug in comsim: reported, the teardown ends (R18)
                self._loop.call_exception_handler({"message": f"comsim: {fn!r}", "exception": exc})
        for loop, fut in waiters:  # on each waiter's loop, through the transport
            self._rt._transport.to_loop(loop, settle, (fut, None))
        self._transport.stop(self)


if TYPE_CHECKING:  # an apartment is the client side of the calls made from it (mypy checks)
    _AS_CLIENT: type[Client] = Apartment
