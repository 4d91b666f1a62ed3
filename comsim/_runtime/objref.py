"""Stubs, proxies, marshal data and the Global Interface Table (R6-R12, R17)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from .._core import hresult as hr
from .._core import rules
from .._core.check import BadArgumentType
from .._core.constants import MSHLFLAGS
from .._core.hresult import COMError
from .._core.iface import MethodSpec
from .._core.marshaldata import DataInput, GitEntry, MarshalData
from .._core.stub import Connection, after_disconnect
from .._objects import (
    CoClass,
    ICallFactory,
    Interface,
    IUnknown,
    _check_interface,
    home_apartment,
    interfaces_of,
)
from . import wire
from .context import WHERE
from .server import fail_queued

if TYPE_CHECKING:
    from .apartment import Apartment
    from .runtime import Runtime

_stub_lock = threading.Lock()


class Stub:
    """The server-side end of an object's connections: one per exported object."""

    __slots__ = ("apartment", "call_factory", "conn", "id", "interfaces", "obj", "running")

    def __init__(self, obj: CoClass, apartment: Apartment) -> None:
        self.id = apartment._rt._stub_ids.__next__()
        self.obj = obj
        self.apartment = apartment
        self.conn = Connection.CONNECTED
        self.running = 0
        self.interfaces = interfaces_of(type(obj))
        #: the object makes its own call objects: calls to it go through them (R26)
        self.call_factory = isinstance(obj, ICallFactory)

    def implements(self, iface: type[Interface]) -> bool:
        return iface is IUnknown or iface in self.interfaces

    def __repr__(self) -> str:
        return f"<Stub {type(self.obj).__name__} in {self.apartment.name} {self.conn.value}>"


def stub_for(obj: CoClass) -> Stub:
    """The object's current stub; a new one after CoDisconnectObject (R17)."""
    stub: Stub | None = obj.__dict__.get("_com_stub")
    if stub is not None and stub.conn is Connection.CONNECTED:
        return stub
    apt = home_apartment(obj)
    with _stub_lock:
        stub = obj.__dict__.get("_com_stub")
        if stub is None or stub.conn is not Connection.CONNECTED:
            stub = Stub(obj, apt)
            obj.__dict__["_com_stub"] = stub
            apt._stubs[stub.id] = stub
    return stub


# --------------------------------------------------------------------------- proxies
class _RefBox:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 1


class _NoSuchMethod(COMError, AttributeError):
    """A method the proxy's interfaces do not declare: E_INVALIDARG (also an AttributeError)."""


class Proxy:
    """A reference to an object in another apartment, bound to the apartment that
    unmarshalled it (R12). Calls through it are COM calls (R13)."""

    _com_kind_ = "proxy"
    _com_proxy_ifaces_: tuple[type[Interface], ...] = ()

    def __init__(self, stub: Stub, apartment: Apartment, refs: _RefBox | None = None) -> None:
        self._stub = stub
        self._apartment = apartment
        self._refs = refs or _RefBox()

    def __repr__(self) -> str:
        names = ",".join(i.__name__ for i in self._com_proxy_ifaces_)
        return (f"<proxy {names} to {type(self._stub.obj).__name__} in "
                f"{self._stub.apartment.name!r}, bound to {self._apartment.name!r}>")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name.startswith("_com"):
            raise AttributeError(name)
        others = [i.__name__ for i in self._stub.interfaces if name in i._com_methods_]
        hint = (f"; QueryInterface({others[0]}) first" if others else "")
        raise _NoSuchMethod(
            hr.E_INVALIDARG,
            f"{'/'.join(i.__name__ for i in self._com_proxy_ifaces_)} declares no method "
            f"{name!r}{hint}; nothing was sent",
        )

    def _check_use(self) -> Apartment:
        w = WHERE.get()
        current = w.apartment if w is not None else None
        code = rules.check_proxy_use(current, self._apartment, self._apartment._accepting)
        if code:
            raise COMError(code, _use_text(code, self))
        assert current is not None
        return current

    def QueryInterface(self, iface: type[Any]) -> Any:
        """A proxy for another interface of the same object, sharing this one's count
        (R25); ``ICallFactory`` gives the call factory (R19).

        Raises:
            COMError: R12's checks; E_NOINTERFACE when the object lacks ``iface``.
        """
        self._check_use()
        iface = _check_interface(iface)
        if iface is ICallFactory:
            from .callobj import CallFactory

            self._refs.count += 1
            return CallFactory(self)
        if not self._stub.implements(iface):
            raise COMError(hr.E_NOINTERFACE,
                           f"{type(self._stub.obj).__name__} does not implement {iface.__name__}")
        self._refs.count += 1
        if iface is IUnknown or iface in self._com_proxy_ifaces_:
            return type(self)(self._stub, self._apartment, self._refs)
        return proxy_class((iface,))(self._stub, self._apartment, self._refs)

    def AddRef(self) -> int:
        self._refs.count += 1
        return self._refs.count

    def Release(self) -> int:
        """Always allowed (R12)."""
        self._refs.count = max(0, self._refs.count - 1)
        return self._refs.count


def _use_text(code: int, proxy: Proxy) -> str:
    if code == hr.CO_E_NOTINITIALIZED:
        return "a proxy was used from code in no apartment; use it inside an apartment's run()"
    if code == hr.CO_E_OBJNOTCONNECTED:
        return (f"the proxy's apartment {proxy._apartment.name!r} has shut down; the proxy is "
                "dead")
    w = WHERE.get()
    where = w.apartment.name if w is not None else "?"
    return (f"a proxy bound to apartment {proxy._apartment.name!r} was used from {where!r}; "
            "marshal it (marshal_interface or the GIT) to the apartment that needs it")


_proxy_classes: dict[tuple[type[Interface], ...], type[Proxy]] = {}


def proxy_class(ifaces: tuple[type[Interface], ...]) -> type[Proxy]:
    cls = _proxy_classes.get(ifaces)
    if cls is not None:
        return cls
    from .client import sync_call

    ns: dict[str, Any] = {"_com_proxy_ifaces_": ifaces, "__slots__": ()}
    for iface in reversed(ifaces):
        for name, spec in iface._com_methods_.items():
            ns[name] = _proxy_method(spec, sync_call)
    bases: tuple[type, ...] = (Proxy, *[i for i in ifaces if i is not IUnknown])
    cls = type("Proxy_" + "_".join(i.__name__ for i in ifaces), bases, ns)
    _proxy_classes[ifaces] = cls
    return cls


def _proxy_method(spec: MethodSpec, sync_call: Any) -> Any:
    def method(self: Proxy, *args: Any, **kwargs: Any) -> Any:
        return sync_call(self, spec, args, kwargs)

    method.__name__ = spec.name
    method.__qualname__ = f"{spec.interface.__name__}.{spec.name}"
    method.__doc__ = f"COM call {spec.interface.__name__}.{spec.name}{spec.signature}"
    return method


# --------------------------------------------------------------------------- references (R11)
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


def unmarshal_interface(stream: MarshalStream, iface: type[Interface] | None = None) -> Any:
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


def _connect(stub: Stub, iface: type[Interface], apt: Apartment) -> Any:
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

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
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
            cookie = next(self._rt._cookies)
            self._entries[cookie] = (stub, iface, GitEntry())
        return cookie

    def GetInterfaceFromGlobal(self, cookie: int, iface: type[Interface]) -> Any:
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
        return _connect(entry[0], iface, apt)

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
