"""Object references, marshal data, ``CoDisconnectObject`` and the Global Interface Table
(R6-R11, R17). Every route in ends in ``_connect`` (R34), one hold of the stub lock from taking
the route's data to taking its reference; every reference on a stub is counted by ``lifetime``
(R7)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast, overload

from .._core import hresult as hr
from .._core import identity, rules
from .._core import lifetime as life
from .._core.check import BadArgumentType
from .._core.constants import MSHLFLAGS
from .._core.hresult import COMError
from .._core.lifetime import LifeEffect, LifeInput
from .._core.marshaldata import DataInput, GitEntry, Hold, MarshalData
from .._core.stub import Connection
from .._core.text import safe_repr
from . import lifetime, wire
from .context import WHERE, on_client_thread
from .objects import (
    CoClass,
    Interface,
    IUnknown,
    _check_interface,
    free_threaded,
    home_apartment,
    interfaces_of,
)
from .proxy import Proxy, arrive, disconnected_proxy, offers, settle
from .stubs import Stub, _stub_lock

if TYPE_CHECKING:
    from .apartment import Apartment


# --------------------------------------------------------------------------- references (R11)
T = TypeVar("T")


class ObjRef(NamedTuple):
    """An object reference inside a value (R11): NORMAL marshal data for every interface of
    the object, holding one strong reference on its stub until it is resolved (R7)."""

    stub: Stub
    ifaces: tuple[type[Interface], ...]
    data: MarshalData


class ByRef(NamedTuple):
    obj: Any


def reference_for(obj: Any) -> Any:
    """What an object found inside an argument or result becomes: a reference, or None (copy
    it). Passing a proxy is using it (R11, R12).

    Raises:
        COMError: R12's checks on a proxy, in their order (CO_E_NOTINITIALIZED,
            CO_E_OBJNOTCONNECTED: its apartment shut down or its count reached 0,
            RPC_E_WRONG_THREAD); RPC_E_DISCONNECTED for a proxy to a disconnected object.
    """
    if isinstance(obj, CoClass):
        _check_direct_use(obj, "a value")
        stub = lifetime.take(obj, LifeInput.ADD_STRONG)
        return ObjRef(stub, stub.interfaces, MarshalData(MSHLFLAGS.NORMAL))
    if isinstance(obj, Proxy):
        obj._check_use()
        stub = obj._stub
        if stub.conn is not Connection.CONNECTED or not lifetime.add(stub, LifeInput.ADD_STRONG):
            raise COMError(hr.RPC_E_DISCONNECTED, "a proxy to a disconnected object was passed")
        return ObjRef(stub, stub.interfaces, MarshalData(MSHLFLAGS.NORMAL))
    if free_threaded(obj):
        return ByRef(obj)
    return None


def resolve(ref: Any, apartment: Apartment) -> Any:
    """The receiving apartment's view of a reference: the object at home, else a proxy of
    the apartment's one manager for it (R11, R34)."""
    if type(ref) is ByRef:
        return ref.obj
    data: MarshalData = ref.data

    def claim() -> Hold:
        code, hold = data.advance(DataInput.UNMARSHAL)
        # resolved again (cannot happen today): a reference of its own; discarded, then
        # unpacked (cannot happen today): R7's released data (Hold.DEAD)
        return Hold.TAKE if code else hold

    # IUnknown's proxy is the one for every interface of the object (R34)
    return _connect(ref.stub, IUnknown, apartment, claim)


def release_reference(ref: Any) -> None:
    """A reference that will never be resolved (the value failed to copy or to arrive):
    its reference on the stub is released (R7)."""
    if type(ref) is ObjRef:
        _release_data(ref.data, ref.stub)


# --------------------------------------------------------------------------- marshal data
class MarshalStream:
    """Marshal data for one interface of one object (a stand-in for COM's stream)."""

    __slots__ = ("_data", "_iface", "_stub")

    def __init__(self, data: MarshalData, stub: Stub, iface: type[Interface]) -> None:
        self._data = data
        self._stub = stub
        self._iface = iface

    @property
    def flags(self) -> MSHLFLAGS:
        return self._data.flags

    def __repr__(self) -> str:
        return (f"<MarshalStream {self._iface.__name__} {self._data.flags.name} "
                f"{self._data.state.value}>")


def _current_apartment(what: str) -> Apartment:
    w = WHERE.get()
    if w is None:
        raise COMError(hr.CO_E_NOTINITIALIZED,
                       f"{what} needs an apartment; call it from code running inside one")
    return w.apartment


def _check_direct_use(obj: CoClass, what: str) -> None:
    """R1: ``obj`` itself is used by code in its own apartment (NA code: in the NA, or on its
    thread's apartment, R5) or is free-threaded; else RPC_E_WRONG_THREAD."""
    home = home_apartment(obj)
    w = WHERE.get()
    current = w.apartment if w is not None else None
    if current is not home and not home._neutral and on_client_thread(home):
        current = home  # NA code on its thread (R5)
    code = rules.direct_use_status(current, home, free_threaded(obj))
    if code:
        raise COMError(code, f"{what}: {type(obj).__name__} lives in apartment {home.name!r}, "
                             f"and only code there uses the object itself (R1); pass a proxy "
                             f"to it (marshal it in its apartment, unmarshal it here)")


def _target_stub(obj: Any, iface: type[Interface], what: str, inp: LifeInput) -> Stub:
    """The stub ``obj`` reaches, with one reference ``inp`` added (R7, R9)."""
    if isinstance(obj, Proxy):
        obj._check_use()
        stub = obj._stub
        if not stub.implements(iface):
            raise COMError(hr.E_NOINTERFACE, f"{what}: {type(stub.obj).__name__} does not "
                                             f"implement {iface.__name__}")
        if stub.conn is not Connection.CONNECTED or not lifetime.add(stub, inp):
            # as COM's proxy, whose marshalling asks the object's stub for a reference
            # (RemAddRef), and as the same proxy passed in a value (``reference_for``)
            raise COMError(hr.RPC_E_DISCONNECTED, f"{what}: the proxy's object was "
                                                  f"disconnected (R17, R18) or released (R7)")
        return stub
    if isinstance(obj, CoClass):
        _check_direct_use(obj, what)
        if not (iface is IUnknown or iface in interfaces_of(type(obj))):
            raise COMError(hr.E_NOINTERFACE, f"{what}: {type(obj).__name__} does not "
                                             f"implement {iface.__name__}")
        return lifetime.take(obj, inp)
    raise COMError(hr.E_INVALIDARG, f"{what}: {safe_repr(obj)} is neither a CoClass nor a proxy")


def marshal_interface(obj: Any, iface: type[Interface],
                      flags: MSHLFLAGS = MSHLFLAGS.NORMAL) -> MarshalStream:
    """Marshal ``obj`` for ``iface`` (R6, R7, R9). The data holds a reference on the
    object's stub (weak for TABLEWEAK) until it is unmarshalled (NORMAL) or released.

    Raises:
        COMError(CO_E_NOTINITIALIZED): called in no apartment.
        COMError(E_NOINTERFACE): the object does not implement ``iface``.
    """
    _current_apartment("marshal_interface")
    iface = _check_interface(iface)
    try:
        if isinstance(flags, bool) or not isinstance(flags, int):  # (1.0 is no flag)
            raise ValueError(flags)
        flags = MSHLFLAGS(flags)
    except ValueError:
        raise COMError(hr.E_INVALIDARG, f"unknown marshal flags {safe_repr(flags)}: give a "
                                        f"comsim.MSHLFLAGS (NORMAL, TABLESTRONG, TABLEWEAK)"
                       ) from None
    stub = _target_stub(obj, iface, "marshal_interface", life.add_input(flags))
    return MarshalStream(MarshalData(flags), stub, iface)


@overload
def unmarshal_interface(stream: MarshalStream) -> Any: ...


@overload
def unmarshal_interface(stream: MarshalStream, iface: type[T]) -> T: ...


def unmarshal_interface(stream: MarshalStream, iface: type[Any] | None = None) -> Any:
    """A proxy bound to the current apartment, or the object itself at home (R8).

    Raises:
        COMError(CO_E_NOTINITIALIZED): called in no apartment.
        COMError(CO_E_OBJNOTCONNECTED): the data was consumed or released, or the object was
            disconnected (R6, R7, R17); CO_E_OBJNOTREG for released table-weak data.
        COMError(E_NOINTERFACE): the object lacks ``iface``; the data is consumed all the same.
    """
    apt = _current_apartment("unmarshal_interface")
    if not isinstance(stream, MarshalStream):
        raise COMError(hr.E_INVALIDARG, f"{safe_repr(stream)} is not marshal data")
    data = stream._data

    def claim() -> Hold:
        code, hold = data.advance(DataInput.UNMARSHAL)
        if code:
            raise COMError(code, f"unmarshal_interface: the marshal data is "
                                 f"{data.state.value} ({data.flags.name}); marshal the object "
                                 "again")
        return hold

    return _connect(stream._stub, iface or stream._iface, apt, claim)


def _connect(stub: Stub, iface: type[Any], apt: Apartment, claim: Callable[[], Hold]) -> Any:
    """A route in (R34) as one step: in one hold of the stub lock, ``claim()`` takes the
    route's data or GIT entry (it raises if it cannot: consumed, released, revoked), the stub
    and the interface are checked and the route's reference is taken (R7, R10). A release,
    revoke or disconnect on another thread comes wholly before it (the route fails) or wholly
    after it (the pointer it gave holds its own reference). Lock order: the stub lock alone
    (``claim`` takes no lock; what the hold decides is carried out once it is let go).

    Raises:
        COMError: what ``claim`` raises; E_NOINTERFACE when the object lacks ``iface`` (R9:
            NORMAL data is consumed all the same); CO_E_OBJNOTREG when the stub went by
            release (table-weak data); CO_E_OBJNOTCONNECTED when it was disconnected or its
            apartment shuts down (R17, R18), or for released NORMAL data at home (R7).
        BadArgumentType: ``iface`` is not an interface (before anything is claimed).
    """
    iface = _check_interface(iface)
    at_home = stub.apartment is apt
    offered = offers(stub, iface, at_home)
    arrival = None
    effect = LifeEffect.NOTHING
    with _stub_lock:
        hold = claim()
        if hold is Hold.DEAD:  # R7: released NORMAL data (nothing of the stub is touched)
            code = life.released_normal_status(at_home) or (0 if offered else hr.E_NOINTERFACE)
        else:
            # the stub's life, not only its connection: a stub that went in another thread's
            # hold is connected until that thread carries it out
            gone = lifetime.gone_reason(stub)
            code = life.unmarshal_status(stub.conn is Connection.CONNECTED and gone is None,
                                         stub.apartment._accepting, offered, gone)
            if not code:
                arrival = arrive(stub, iface, apt, hold)
            elif identity.FAILED[hold]:  # R9: the data is consumed all the same
                effect = lifetime.step_locked(stub, LifeInput.DROP_STRONG)
    if arrival is not None:
        return settle(stub, apt, arrival)
    lifetime.carry_out(stub, effect)
    if hold is Hold.DEAD and not code:
        return disconnected_proxy(stub, iface, apt)
    raise COMError(code, f"{type(stub.obj).__name__} as {iface.__name__}: "
                         + ("the object does not implement it" if code == hr.E_NOINTERFACE
                            else "its marshal data was released; marshal it again"
                            if hold is Hold.DEAD
                            else "its stub has gone (every reference to it was released; "
                                 "marshal it again)" if code == hr.CO_E_OBJNOTREG
                            else "the object was disconnected or its apartment "
                                 f"{stub.apartment.name!r} has shut down"))


def _release_data(data: MarshalData, stub: Stub) -> None:
    with _stub_lock:
        _code, hold = data.advance(DataInput.RELEASE)
        effect = (lifetime.step_locked(stub, life.drop_input(data.flags))
                  if hold is Hold.DROP else life.LifeEffect.NOTHING)
    lifetime.carry_out(stub, effect)


def release_marshal_data(stream: MarshalStream) -> None:
    """Free marshal data without unmarshalling it; works from any apartment (R7): its
    reference on the stub is released, which may disconnect the object.
    Releasing twice, or releasing consumed normal data, does nothing."""
    if not isinstance(stream, MarshalStream):
        raise COMError(hr.E_INVALIDARG, f"{safe_repr(stream)} is not marshal data")
    _release_data(stream._data, stream._stub)


def CoDisconnectObject(obj: Any) -> None:
    """Disconnect ``obj`` from its clients (R17). Running calls finish; queued and new ones
    fail with CO_E_OBJNOTCONNECTED until they have, then with RPC_E_DISCONNECTED.

    Raises:
        COMError(CO_E_NOTINITIALIZED): called in no apartment.
        COMError(RPC_E_WRONG_THREAD): called outside the object's apartment.
    """
    apt = _current_apartment("CoDisconnectObject")
    if not isinstance(obj, CoClass):
        raise COMError(hr.E_INVALIDARG, f"CoDisconnectObject: {safe_repr(obj)} is not a CoClass")
    home = home_apartment(obj)
    code = rules.disconnect_status(apt, home)
    if code:
        raise COMError(code, f"CoDisconnectObject must run in the object's apartment "
                             f"{home.name!r}, not in {apt.name!r}")
    stub: Stub | None = obj.__dict__.get("_com_stub")
    if stub is None:
        return
    lifetime.step(stub, LifeInput.DISCONNECT)


# --------------------------------------------------------------------------- GIT (R10)
def _check_cookie(api: str, cookie: Any) -> None:
    if isinstance(cookie, bool) or not isinstance(cookie, int):
        raise BadArgumentType(f"{api}({safe_repr(cookie)}): a GIT cookie is the int that "
                              "RegisterInterfaceInGlobal gave")


class GlobalInterfaceTable:
    """``rt.git``: interface pointers any apartment can get (R10). ``_lock`` guards the
    entries and the cookies; an entry's revocation is guarded by the stub lock, with the
    stub's references (R7), so that a get and a revoke are each one step. The two locks are
    never held together."""

    def __init__(self, cookies: Iterator[int]) -> None:
        self._cookies = cookies  # the runtime's: cookies are unique within it
        self._entries: dict[int, tuple[Stub, type[Interface], GitEntry]] = {}
        self._lock = threading.Lock()

    def RegisterInterfaceInGlobal(self, obj: Any, iface: type[Interface]) -> int:
        """Register ``obj`` for ``iface``; gives a cookie.

        Raises:
            COMError(CO_E_NOTINITIALIZED): called in no apartment.
            COMError(E_NOINTERFACE): the object does not implement ``iface``.
        """
        _current_apartment("RegisterInterfaceInGlobal")
        iface = _check_interface(iface)
        stub = _target_stub(obj, iface, "RegisterInterfaceInGlobal", LifeInput.ADD_STRONG)
        with self._lock:
            cookie = next(self._cookies)
            self._entries[cookie] = (stub, iface, GitEntry())
        return cookie

    def GetInterfaceFromGlobal(self, cookie: int, iface: type[T]) -> T:
        """A proxy (or the object at home) for the registered object, as ``iface``.

        Raises:
            COMError(CO_E_NOTINITIALIZED): called in no apartment.
            COMError(E_INVALIDARG): unknown or revoked cookie.
            COMError(E_NOINTERFACE): the object lacks ``iface``.
            COMError(CO_E_OBJNOTCONNECTED): the object was disconnected (R17).
        """
        apt = _current_apartment("GetInterfaceFromGlobal")
        _check_cookie("GetInterfaceFromGlobal", cookie)
        with self._lock:
            entry = self._entries.get(cookie)
        if entry is None:
            raise COMError(hr.E_INVALIDARG, f"GIT cookie {safe_repr(cookie)} is not registered")
        registration = entry[2]

        def claim() -> Hold:  # under the stub lock, which guards the entry's revocation
            if registration.get():
                raise COMError(hr.E_INVALIDARG, f"GIT cookie {safe_repr(cookie)} was revoked")
            return Hold.TAKE  # the entry keeps its reference; the route takes one (R7)

        return cast(T, _connect(entry[0], iface, apt, claim))

    def RevokeInterfaceFromGlobal(self, cookie: int) -> None:
        """Revoke a registration; any apartment may.

        Raises:
            COMError(CO_E_NOTINITIALIZED): called in no apartment.
            COMError(E_INVALIDARG): unknown or already revoked cookie.
        """
        _current_apartment("RevokeInterfaceFromGlobal")
        _check_cookie("RevokeInterfaceFromGlobal", cookie)
        with self._lock:
            entry = self._entries.get(cookie)
        if entry is None:
            raise COMError(hr.E_INVALIDARG, f"GIT cookie {safe_repr(cookie)} is not registered")
        stub = entry[0]
        with _stub_lock:  # the revocation and the entry's strong reference go in one step (R7)
            code = entry[2].revoke()
            effect = (LifeEffect.NOTHING if code
                      else lifetime.step_locked(stub, LifeInput.DROP_STRONG))
        lifetime.carry_out(stub, effect)
        if code:
            raise COMError(code, f"GIT cookie {safe_repr(cookie)} was revoked already")


wire.install(reference_for, resolve, release_reference)
