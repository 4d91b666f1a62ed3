"""Object references, marshal data, ``CoDisconnectObject`` and the Global Interface Table
(R6-R11, R17)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast, overload

from .._core import hresult as hr
from .._core import rules
from .._core.check import BadArgumentType
from .._core.constants import MSHLFLAGS
from .._core.hresult import COMError
from .._core.marshaldata import DataInput, GitEntry, MarshalData
from .._core.stub import Connection, after_disconnect
from . import wire
from .context import WHERE
from .objects import (
    CoClass,
    Interface,
    _check_interface,
    home_apartment,
)
from .proxy import Proxy, proxy_class
from .server import fail_queued
from .stubs import Stub, _stub_lock, stub_for

if TYPE_CHECKING:
    from .apartment import Apartment


# --------------------------------------------------------------------------- references (R11)
T = TypeVar("T")


class ObjRef(NamedTuple):
    stub: Stub
    ifaces: tuple[type[Interface], ...]


class ByRef(NamedTuple):
    obj: Any


def reference_for(obj: Any) -> Any:
    """What an object found inside an argument becomes: a reference, or None (copy it)."""
    if isinstance(obj, CoClass):
        stub = stub_for(obj)
        return ObjRef(stub, stub.interfaces)
    if isinstance(obj, Proxy):
        stub = obj._stub
        if stub.conn is not Connection.CONNECTED:
            raise COMError(hr.RPC_E_DISCONNECTED, "a proxy to a disconnected object was passed")
        return ObjRef(stub, stub.interfaces)
    if getattr(obj, "_com_free_threaded_", False):
        return ByRef(obj)
    return None


def resolve(ref: Any, apartment: Apartment) -> Any:
    """The receiving apartment's view of a reference: the object at home, else a proxy."""
    if type(ref) is ByRef:
        return ref.obj
    stub: Stub = ref.stub
    if stub.apartment is apartment:
        return stub.obj
    return proxy_class(ref.ifaces)(stub, apartment)


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


def _target_stub(obj: Any, iface: type[Interface], what: str) -> Stub:
    if isinstance(obj, Proxy):
        obj._check_use()
        stub = obj._stub
    elif isinstance(obj, CoClass):
        stub = stub_for(obj)
    else:
        raise COMError(hr.E_INVALIDARG, f"{what}: {obj!r} is neither a CoClass nor a proxy")
    if not stub.implements(iface):
        raise COMError(hr.E_NOINTERFACE,
                       f"{what}: {type(stub.obj).__name__} does not implement {iface.__name__}")
    return stub


def marshal_interface(obj: Any, iface: type[Interface],
                      flags: MSHLFLAGS = MSHLFLAGS.NORMAL) -> MarshalStream:
    """Marshal ``obj`` for ``iface`` (R6, R7, R9).

    Raises:
        COMError(CO_E_NOTINITIALIZED): called in no apartment.
        COMError(E_NOINTERFACE): the object does not implement ``iface``.
    """
    _current_apartment("marshal_interface")
    iface = _check_interface(iface)
    try:
        if isinstance(flags, bool):
            raise ValueError(flags)
        flags = MSHLFLAGS(flags)
    except ValueError:
        raise COMError(hr.E_INVALIDARG, f"unknown marshal flags {flags!r}") from None
    stub = _target_stub(obj, iface, "marshal_interface")
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
        raise COMError(hr.E_INVALIDARG, f"{stream!r} is not marshal data")
    stub = stream._stub
    with apt._rt._lock:
        code = stream._data.step(DataInput.UNMARSHAL)
    if code:
        raise COMError(code, f"marshal data is {stream._data.state.value} "
                             f"({stream._data.flags.name}); marshal the object again")
    return _connect(stub, iface or stream._iface, apt)


def _connect(stub: Stub, iface: type[Any], apt: Apartment) -> Any:
    iface = _check_interface(iface)
    code = rules.unmarshal_status(stub.conn is Connection.CONNECTED, stub.apartment._accepting,
                                  stub.implements(iface))
    if code:
        raise COMError(code, f"{type(stub.obj).__name__} as {iface.__name__}: "
                             + ("the object does not implement it" if code == hr.E_NOINTERFACE
                                else "the object was disconnected or its apartment "
                                     f"{stub.apartment.name!r} has shut down"))
    if stub.apartment is apt:
        stub.obj.AddRef()
        return stub.obj
    return proxy_class((iface,))(stub, apt)


def release_marshal_data(stream: MarshalStream) -> None:
    """Free marshal data without unmarshalling it; works from any apartment (R7).
    Releasing twice, or releasing consumed normal data, does nothing."""
    if not isinstance(stream, MarshalStream):
        raise COMError(hr.E_INVALIDARG, f"{stream!r} is not marshal data")
    with _stub_lock:
        stream._data.step(DataInput.RELEASE)


def CoDisconnectObject(obj: Any) -> None:
    """Disconnect ``obj`` from its clients (R17). Running calls finish; queued and new ones
    fail with CO_E_OBJNOTCONNECTED until they have, then with RPC_E_DISCONNECTED.

    Raises:
        COMError(CO_E_NOTINITIALIZED): called in no apartment.
        COMError(RPC_E_WRONG_THREAD): called outside the object's apartment.
    """
    apt = _current_apartment("CoDisconnectObject")
    if not isinstance(obj, CoClass):
        raise COMError(hr.E_INVALIDARG, f"CoDisconnectObject: {obj!r} is not a CoClass")
    home = home_apartment(obj)
    code = rules.disconnect_status(apt, home)
    if code:
        raise COMError(code, f"CoDisconnectObject must run in the object's apartment "
                             f"{home.name!r}, not in {apt.name!r}")
    stub: Stub | None = obj.__dict__.pop("_com_stub", None)
    if stub is None:
        return
    stub.conn = after_disconnect(stub.running)
    apt._stubs.pop(stub.id, None)
    fail_queued(apt, stub, hr.CO_E_OBJNOTCONNECTED)


# --------------------------------------------------------------------------- GIT (R10)
def _check_cookie(api: str, cookie: Any) -> None:
    if isinstance(cookie, bool) or not isinstance(cookie, int):
        raise BadArgumentType(f"{api}({cookie!r}): a GIT cookie is the int that "
                              "RegisterInterfaceInGlobal gave")


class GlobalInterfaceTable:
    """``rt.git``: interface pointers any apartment can get (R10)."""

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
        stub = _target_stub(obj, iface, "RegisterInterfaceInGlobal")
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
            code = entry[2].get() if entry is not None else hr.E_INVALIDARG
        if code or entry is None:
            raise COMError(hr.E_INVALIDARG, f"GIT cookie {cookie!r} is not registered (revoked?)")
        return cast(T, _connect(entry[0], iface, apt))

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
            code = entry[2].revoke() if entry is not None else hr.E_INVALIDARG
        if code:
            raise COMError(code, f"GIT cookie {cookie!r} is not registered (revoked twice?)")


wire.install(reference_for, resolve)
