"""Proxies: references to an object in another apartment, bound to the apartment that
unmarshalled them (R12, R13, R19, R25)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._core import hresult as hr
from .._core import rules
from .._core.hresult import COMError
from .._core.iface import MethodSpec
from .._core.refcount import RefCount
from .callobj import CallFactory
from .client import sync_call
from .context import WHERE
from .objects import (
    ICallFactory,
    Interface,
    IUnknown,
    _check_interface,
)
from .stubs import Stub

if TYPE_CHECKING:
    from .apartment import Apartment


# --------------------------------------------------------------------------- proxies
T = TypeVar("T")


class _NoSuchMethod(COMError, AttributeError):
    """A method the proxy's interfaces do not declare: E_INVALIDARG (also an AttributeError)."""


class Proxy:
    """A reference to an object in another apartment, bound to the apartment that
    unmarshalled it (R12). Calls through it are COM calls (R13)."""

    _com_kind_ = "proxy"
    _com_proxy_ifaces_: tuple[type[Interface], ...] = ()

    def __init__(self, stub: Stub, apartment: Apartment, refs: RefCount | None = None) -> None:
        self._stub = stub
        self._apartment = apartment
        self._refs = refs or RefCount()  # one count for every interface of it (R25)

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

    def QueryInterface(self, iface: type[T]) -> T:
        """A proxy for another interface of the same object, sharing this one's count
        (R25); ``ICallFactory`` gives the call factory (R19).

        Raises:
            COMError: R12's checks; E_NOINTERFACE when the object lacks ``iface``.
        """
        self._check_use()
        wanted = _check_interface(iface)
        if wanted is ICallFactory:
            self._refs.add()
            return cast(T, CallFactory(self))
        if not self._stub.implements(wanted):
            raise COMError(hr.E_NOINTERFACE, f"{type(self._stub.obj).__name__} does not "
                                             f"implement {wanted.__name__}")
        self._refs.add()
        if wanted is IUnknown or wanted in self._com_proxy_ifaces_:
            return cast(T, type(self)(self._stub, self._apartment, self._refs))
        return cast(T, proxy_class((wanted,))(self._stub, self._apartment, self._refs))

    def AddRef(self) -> int:
        return self._refs.add()

    def Release(self) -> int:
        """Always allowed (R12)."""
        return self._refs.release()


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
