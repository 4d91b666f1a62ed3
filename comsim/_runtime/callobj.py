"""Call objects: ``Begin_``/``Finish_``, their ``ISynchronize`` and ``ICancelMethodCalls``
facets, the proxy's ``ICallFactory``, and the server's ``ServerCall`` (R19-R28)."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import TYPE_CHECKING, Any, Final

from .._core import decide, rules
from .._core import hresult as hr
from .._core.callobj import TABLE as CALL_TABLE
from .._core.callobj import CallMachine, Effect, Input, State
from .._core.check import BadArgumentType, NoSuchMethod
from .._core.decide import Reaction, Waiter
from .._core.hresult import COMError
from .._core.iface import MethodSpec
from .._core.refcount import RefCount
from .._core.sta import WaitKind
from .._core.text import safe_repr
from .cancel import grace_expired, start_cancel
from .client import _check_proxy, _outcome
from .context import UNDER, on_client_thread, step_on_client
from .events import ManualResetEvent
from .facets import _CancelFacet, _SyncFacet
from .inline import begin_neutral
from .objects import (
    ICallFactory,
    ICancelMethodCalls,
    Interface,
    ISynchronize,
    IUnknown,
    _check_interface,
    is_async_interface,
)
from .record import (
    ClientCall,
    Proxy,
    _send,
    add_waiter,
    drop_reply,
    end_with_client,
    keep_for_reply,
    stop_waiting,
)
from .wire import pack

if TYPE_CHECKING:
    from .apartment import Apartment


# --------------------------------------------------------------------------- call objects
#: what ``Finish_`` gives when the call it waited for was finished by another ``Finish_``
#: (and a new call begun): for it, no call in progress (R21, R22)
_NO_CALL: Final = CALL_TABLE[(State.IDLE, Input.FINISH)]
#: ``WaitKind.OTHER``, read once: a wait for a call object's call (R2, R16)
_OTHER_WAIT: Final = WaitKind.OTHER
#: guards the making of a call object's event against its signal from the client's loop
_EVENT_LOCK = threading.Lock()
#: makes a call object's Release atomic across threads (COM's interlocked count)
_RELEASE_LOCK = threading.Lock()


class CallObject:
    """A client call object for ``AsyncIX`` (R19-R28): ``Begin_M``/``Finish_M``, and through
    QueryInterface ``ISynchronize`` and ``ICancelMethodCalls``."""

    _com_kind_ = "callobj"

    def __init__(self, proxy: Proxy, async_iface: type[Interface], outer: Any) -> None:
        self._proxy = proxy
        self._async_iface = async_iface
        assert async_iface._com_sync_interface_ is not None
        self._machine = CallMachine()
        self._call: ClientCall | None = None
        #: the call object's event (R23), made when ``ISynchronize`` first needs it; until then
        #: whether it is set is all there is of it (nobody can wait on it)
        self._event: ManualResetEvent | None = None
        self._signalled = False
        self._outer = outer
        self._refs = RefCount(revives=False)  # released, it stays so (R25)
        #: for a call begun by NA code: where ``outer.Signal()`` runs (the NA, the thread
        #: under it; R5, R24)
        self._signal_at: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        return (f"<call object {self._async_iface.__name__} on {self._proxy!r} "
                f"{self._machine.state.value}>")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NoSuchMethod(f"{self._async_iface.__name__} has no method {name!r}; nothing began")

    def _check(self) -> Apartment:
        return self._proxy._check_use()

    def _sync_event(self) -> ManualResetEvent:
        """The call object's event (R23), made now if it was not: set if the call has ended
        and Finish_ has not been called since (or ``Signal()`` was called)."""
        event = self._event
        if event is None:
            with _EVENT_LOCK:
                event = self._event
                if event is None:
                    event = ManualResetEvent()
                    if self._signalled:
                        event.Signal()
                    self._event = event
        return event

    def _set_event(self, signalled: bool) -> None:
        """Signal the call object's event (the call has ended, R23), or reset it."""
        event = self._event
        if event is None:
            with _EVENT_LOCK:
                event = self._event
                if event is None:
                    self._signalled = signalled
                    return
        if signalled:
            event.Signal()
        else:
            event.Reset()

    def _begin(self, spec: MethodSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        self._check()
        if self._machine.state is not State.IDLE:
            _effect, _s, code = self._machine.step(Input.BEGIN)
            what = ("Finish_ has not been called for the previous call; call "
                    f"Finish_{self._call.method if self._call else '?'}() first"
                    if code == hr.RPC_E_CALL_PENDING else "the call object was released")
            raise COMError(code or hr.E_FAIL,
                           f"Begin_{spec.name} on a call object in state "
                           f"{self._machine.state.value}: {what}")
        where = _check_proxy(self._proxy)
        bound = spec.bind(args, kwargs)
        packed = pack(bound, spec.arguments_label)
        self._machine.step(Input.BEGIN)
        self._set_event(False)
        call = ClientCall(where, self._proxy._stub, spec, packed, self._machine, sync=False,
                          owner=self)
        if where.apartment._neutral:  # R5: NA code's replies come to the thread under it
            call.client = where.apartment.host()
            self._signal_at = (where, UNDER.get())  # R24: Signal with the NA current, there
            end_with_client(call)  # R18: if that thread's apartment ends first
        self._call = call
        if call.server._neutral:  # R5 (choice): the method starts at once, a task of ours
            begin_neutral(call, where)
        else:
            _send(call)
        return hr.S_OK

    async def _finish(self, spec: MethodSpec) -> Any:
        """R22: wait for the call to end (a COM wait, with the call's causality id, R16), then
        give its result. The machine is stepped again after each wake-up; a call that another
        ``Finish_`` finished meanwhile is, for this one, no call in progress (R21).

        Raises:
            COMError(RPC_E_CALL_COMPLETE): no call in progress (never begun, or finished).
            COMError(E_INVALIDARG): the call in progress is of another method (nothing changes).
            COMError(E_FAIL): the call object was released (R25).
            COMError: the call's own failure HRESULT, RPC_E_CALL_CANCELED once cancelled.
            CancelledError: the waiting task was cancelled (R32: the call is cancelled and the
                call object is idle again; by its apartment's shutdown, abandoned, R18).
        """
        apt = self._check()
        call = self._call
        if rules.finish_status(self._machine.state is State.IDLE,
                               call.method if call is not None else None, spec.name):
            assert call is not None
            raise COMError(hr.E_INVALIDARG,
                           f"Finish_{spec.name} called, but the call in progress is "
                           f"Begin_{call.method}; call Finish_{call.method}() (nothing changed)")
        while True:
            effect, _s, code = self._machine.step(Input.FINISH)
            if effect is not Effect.WAIT:
                break
            assert call is not None
            fut = apt.new_future()
            add_waiter(call, fut)
            at_once = functools.partial(self._finish_cancelled, call)
            try:
                await apt.com_wait(fut, _OTHER_WAIT, call.causality_id, on_cancel=at_once)
            except asyncio.CancelledError:
                at_once()  # (cancelled while it waited to be on top: now)
                raise
            if self._call is not call:  # another Finish_ finished it, and Begin_ came again
                effect, _s, code = _NO_CALL
                break
        if effect is Effect.REFUSE:
            raise COMError(code or hr.E_FAIL, f"Finish_{spec.name}: " + (
                "the call object was released (its last reference went, R25)"
                if self._machine.state is State.RELEASED else
                f"no call in progress (call Begin_{spec.name} first; a call is finished once)"))
        assert call is not None
        self._set_event(False)
        return _outcome(call, apt, effect, code)

    def _finish_cancelled(self, call: ClientCall) -> None:
        """R32: ``Finish_``'s waiting task was cancelled: at once (not when its unit is on top
        again, R2), and once, ``call`` is cancelled as ``Cancel(0)`` would, a grace period
        another ``Cancel`` waits out ends (the call ends cancelled, that ``Cancel`` gives S_OK),
        and ``Finish_``'s step leaves the call object idle, a reply taken in dropped (R7); not
        while its apartment shuts down (R18: abandoned, the teardown ends it)."""
        if (self._call is call and self._machine.state is not State.IDLE
                and decide.waiter_cancelled(Waiter.FINISH, closing=call.client._closing)
                is Reaction.CANCEL_THEN_FINISH):
            start_cancel(call, 0.0)
            grace_expired(call)
            self._machine.step(Input.FINISH)
            self._set_event(False)
            drop_reply(call)  # R7: a reply taken in is never unpacked

    def QueryInterface(self, iface: type[Any]) -> Any:
        """``ISynchronize`` and ``ICancelMethodCalls`` (R23, R27); the async interface itself.

        Raises:
            COMError(E_NOINTERFACE): any other interface.
            COMError(CO_E_OBJNOTCONNECTED): the call object's count has reached 0 (released).
        """
        iface = _check_interface(iface)
        if self._refs.count <= 0:
            raise COMError(hr.CO_E_OBJNOTCONNECTED,
                           f"QueryInterface({iface.__name__}) on a call object whose last "
                           "reference was released; create a new one with CreateCall")
        if iface is ISynchronize:
            self.AddRef()
            return _SyncFacet(self)
        if iface is ICancelMethodCalls:
            self.AddRef()
            return _CancelFacet(self)
        if iface is self._async_iface or iface is IUnknown:
            self.AddRef()
            return self
        raise COMError(hr.E_NOINTERFACE, f"a call object has no {iface.__name__}")

    def AddRef(self) -> int:
        """One more reference; 0 once released (the count does not come back, R25)."""
        return self._refs.add()

    def Release(self) -> int:
        """The last Release without Finish_ does not cancel: the reply is dropped (R25), a reply
        already taken in with it (R7), and the call object's count on its proxy manager goes
        (R19, R25, R34: ``_core.callobj.TABLE``'s FORGET). Allowed from any thread (R12): the
        count goes at once; a last Release from a thread other than the client apartment's
        does its step there, in order with the replies it takes in (in its shutdown: at the
        end of its teardown, which takes in the replies that came before, R18)."""
        with _RELEASE_LOCK:
            refs = self._refs
            if refs.count <= 0:
                return 0
            left = refs.release()
        if left == 0:
            call = self._call
            client = call.client if call is not None else None
            if client is None or on_client_thread(client) or not step_on_client(
                    client, self, self._forget):
                self._forget()  # never begun, on its own thread, or its apartment has ended
        return left

    def _forget(self) -> None:
        """The last reference went: the call machine's RELEASE step (on the client's loop). A
        call on its way keeps the manager until its reply (FORGET_IN_FLIGHT), and whoever
        waits for it stops waiting now (R25, R28)."""
        effect, _s, code = self._machine.step(Input.RELEASE)
        if effect is Effect.NOTHING:
            return
        call = self._call
        if call is not None:
            drop_reply(call)
        if call is not None and effect is Effect.FORGET_IN_FLIGHT:
            keep_for_reply(call, self._proxy)  # until no reply can come any more (R25)
            stop_waiting(call, code if code is not None else hr.RPC_E_CALL_COMPLETE)
        else:
            self._proxy.Release()


_call_object_classes: dict[type[Interface], type[CallObject]] = {}


def call_object_class(async_iface: type[Interface]) -> type[CallObject]:
    """The call-object class for ``AsyncIX``: real ``Begin_M``/``Finish_M`` methods (R20), and
    ``isinstance(call, AsyncIX)`` holds."""
    cls = _call_object_classes.get(async_iface)
    if cls is not None:
        return cls
    sync_iface = async_iface._com_sync_interface_
    assert sync_iface is not None
    ns: dict[str, Any] = {}
    for name, spec in sync_iface._com_methods_.items():
        ns["Begin_" + name] = _begin_method(spec)
        ns["Finish_" + name] = _finish_method(spec)
    cls = type("CallObject_" + async_iface.__name__, (CallObject, async_iface), ns)
    _call_object_classes[async_iface] = cls
    return cls


def _begin_method(spec: MethodSpec) -> Any:
    def begin(self: CallObject, *args: Any, **kwargs: Any) -> int:
        return self._begin(spec, args, kwargs)

    begin.__name__ = "Begin_" + spec.name
    begin.__doc__ = (f"Begin {spec.interface.__name__}.{spec.name}{spec.signature}: S_OK at once "
                     "(R20); COMError(RPC_E_CALL_PENDING) until Finish_ of the previous call")
    return begin


def _finish_method(spec: MethodSpec) -> Any:
    def finish(self: CallObject) -> Any:
        return self._finish(spec)

    finish.__name__ = "Finish_" + spec.name
    finish.__doc__ = (f"Finish {spec.interface.__name__}.{spec.name}: its result or failure "
                      "(R22); COMError(RPC_E_CALL_COMPLETE) with no call in progress")
    return finish


class CallFactory(ICallFactory):
    """``ICallFactory`` of a proxy: always available (R19)."""

    _com_kind_ = "facet"

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy

    def CreateCall(self, async_iface: type[Interface], outer: Any = None) -> CallObject:
        """A new call object for ``async_iface``.

        Raises:
            COMError(E_NOINTERFACE): not an async interface, or its synchronous interface is
                not implemented by the object.
            COMError(E_INVALIDARG), also a TypeError: ``outer`` has no ``Signal()`` (R24).
        """
        self._proxy._check_use()
        if outer is not None and not callable(getattr(outer, "Signal", None)):
            raise BadArgumentType(f"CreateCall(..., outer={safe_repr(outer)}): the completion "
                                  "object needs a Signal() method (R24)")
        is_async = is_async_interface(async_iface)
        sync_iface = async_iface._com_sync_interface_ if is_async else None
        code = rules.create_call_status(
            is_async, sync_iface is not None and self._proxy._stub.implements(sync_iface))
        if code:
            name = getattr(async_iface, "__name__", repr(async_iface))
            raise COMError(code, f"CreateCall({name}): not an async interface "
                                 "(use comsim.async_interface(IX)), or the object does not "
                                 "implement its synchronous interface")
        call = call_object_class(async_iface)(self._proxy, async_iface, outer)
        # R19, R25, R34: a call object is a reference to the object through its proxy: it
        # holds one count on the proxy manager until its last Release (FORGET), so that
        # Begin_ works however the proxy's other holders release it
        self._proxy.AddRef()
        return call

    def QueryInterface(self, iface: type[Any]) -> Any:
        return self._proxy.QueryInterface(iface)

    def AddRef(self) -> int:
        return self._proxy.AddRef()

    def Release(self) -> int:
        return self._proxy.Release()

# --------------------------------------------------------------------------- server call (R26)
class ServerCall:
    """Base of a server-side call object (R26). Keeps ``outer`` (signal it when the result is
    ready) and gives ``TestCancel()`` for cooperative cancellation."""

    _com_kind_ = "servercall"
    _com_incoming: ClientCall | None = None

    def __init__(self, outer: Any) -> None:
        self.outer = outer

    def TestCancel(self) -> int:
        """RPC_E_CALL_CANCELED once the client cancelled, RPC_S_CALLPENDING before."""
        call = self._com_incoming
        return rules.test_cancel_status(call is not None,
                                        call is not None and call.server_cancelled)

    def QueryInterface(self, iface: type[Any]) -> Any:
        """The interfaces the class implements (R19, R27: ``ICancelMethodCalls`` only if it
        does).

        Raises:
            COMError(E_NOINTERFACE): any other interface.
        """
        iface = _check_interface(iface)
        if isinstance(self, iface) or iface is IUnknown:
            return self
        raise COMError(hr.E_NOINTERFACE, f"{type(self).__name__} has no {iface.__name__}")

    def AddRef(self) -> int:
        return 1

    def Release(self) -> int:
        return 0
