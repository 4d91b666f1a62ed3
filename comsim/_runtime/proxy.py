"""Proxies and proxy managers: references to an object in another apartment, bound to the
apartment that unmarshalled them (R12, R13, R19, R25), one manager per object per apartment
(R34, decided by ``_core.identity``)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from .._core import hresult as hr
from .._core import identity
from .._core.check import NoSuchMethod
from .._core.hresult import COMError
from .._core.iface import MethodSpec
from .._core.lifetime import LifeEffect, LifeInput
from .._core.marshaldata import Hold
from . import lifetime
from .boundary import own_ref
from .callobj import CallFactory
from .client import sync_call
from .context import WHERE
from .objects import (
    ICallFactory,
    Interface,
    IUnknown,
    _check_interface,
)
from .stubs import Stub, _stub_lock

if TYPE_CHECKING:
    from .apartment import Apartment


# --------------------------------------------------------------------------- managers (R34)
T = TypeVar("T")

#: each apartment's live proxy managers, by the id of their object (R34); guarded by the stub
#: lock. An apartment's shutdown releases them (``_end_all``)
_managers: dict[Apartment, dict[int, ProxyManager]] = {}
_AT_CLOSE = ("comsim.proxy_managers",)


class ProxyManager:
    """An object's presence in one apartment (R34): one count for all its proxies (R25), one
    proxy per interface, and one strong reference on the object's stub while the count is
    above 0 (R7)."""

    __slots__ = ("apartment", "count", "proxies", "stub")

    def __init__(self, stub: Stub, apartment: Apartment) -> None:
        self.stub = stub
        self.apartment = apartment
        self.count = identity.ManagerCount()
        self.proxies: dict[tuple[type[Interface], ...], Proxy] = {}

    def proxy(self, iface: type[Interface]) -> Proxy:
        """The manager's one proxy for ``iface`` (caller holds the stub lock)."""
        key = identity.proxy_key(iface, self.stub.interfaces, IUnknown)
        p = self.proxies.get(key)
        if p is None:
            p = self.proxies[key] = proxy_class(key)(self)
        return p

    def release(self) -> int:
        with _stub_lock:
            count, left = self.count.release()
            effect = self._leave() if left else LifeEffect.NOTHING
        lifetime.carry_out(self.stub, effect)
        return count

    def _leave(self) -> LifeEffect:
        """The count reached 0 (caller holds the stub lock): the manager leaves its apartment
        and releases its strong reference on the stub (R7)."""
        table = _managers.get(self.apartment)
        key = id(self.stub.obj)
        if table is not None and table.get(key) is self:
            del table[key]
        return lifetime.step_locked(self.stub, LifeInput.DROP_STRONG)


class Arrival(NamedTuple):
    """What ``arrive`` decided under the stub lock, for ``settle`` once it is let go."""

    pointer: Any  # the object itself, or a proxy of the apartment's manager (R8, R34)
    effect: LifeEffect  # the stub goes (R18: a manager built in a closing apartment)
    at_home: bool  # the object itself: one AddRef on it
    first: bool  # the apartment's first manager: its shutdown must release them (R7, R18)


def offers(stub: Stub, iface: type[Interface], at_home: bool) -> bool:
    """R9, R19: whether a route to ``stub`` (or a QueryInterface) gives ``iface``: the
    object's interfaces, and away from home ``ICallFactory`` too, which every proxy has."""
    return stub.implements(iface) or (iface is ICallFactory and not at_home)


def arrive(stub: Stub, iface: type[Interface], apt: Apartment, hold: Hold) -> Arrival:
    """R34: the interface pointer a route gives in ``apt``: the object itself at home, else a
    proxy of the apartment's one manager for the object (R7: ``hold`` says what becomes of the
    route's reference on the stub). The caller holds the stub lock, has checked in the same
    hold that the stub is connected and ``offers`` ``iface`` (so the reference is taken on a
    live stub, R7, R10), and passes the result to ``settle`` once it has let go of the lock."""
    at_home = stub.apartment is apt
    key = id(stub.obj)
    table = _managers.get(apt)
    mgr = table.get(key) if table is not None else None
    live = mgr is not None and mgr.stub is stub and mgr.count.live
    build, delta = identity.ROUTE[(identity.where(at_home, live), hold)]
    effect = LifeEffect.NOTHING
    if delta > 0:
        effect = lifetime.step_locked(stub, LifeInput.ADD_STRONG)
    elif delta < 0:
        effect = lifetime.step_locked(stub, LifeInput.DROP_STRONG)
    result: Any = stub.obj
    first = False
    if build is identity.Build.JOIN:
        assert mgr is not None
        mgr.count.add()
        result = mgr.proxy(iface)
    elif build is identity.Build.BUILD:
        mgr = ProxyManager(stub, apt)
        result = mgr.proxy(iface)
        if apt._closing:
            # R18: the apartment's teardown releases its managers, maybe already: this one
            # goes at once (its proxies give CO_E_OBJNOTCONNECTED there, R12)
            mgr.count.end()
            effect = lifetime.step_locked(stub, LifeInput.DROP_STRONG)  # BUILD added one
        else:
            if table is None:
                table = _managers[apt] = {}
                first = True
            table[key] = mgr
    return Arrival(result, effect, build is identity.Build.OBJECT, first)


def settle(stub: Stub, apt: Apartment, arrival: Arrival) -> Any:
    """``arrive``'s pointer, once the stub lock is let go: what it decided is carried out."""
    if arrival.at_home:
        own_ref(stub.obj, "AddRef")
    if arrival.first:
        apt._at_close[_AT_CLOSE] = functools.partial(_end_all, apt)
    lifetime.carry_out(stub, arrival.effect)
    return arrival.pointer


def disconnected_proxy(stub: Stub, iface: type[Interface], apt: Apartment) -> Proxy:
    """R7: released NORMAL data gives a proxy of its own, never shared (R34), whose calls fail
    with RPC_E_DISCONNECTED."""
    mgr = ProxyManager(lifetime.disconnected_copy(stub), apt)
    return mgr.proxy(iface)


def _end_all(apt: Apartment) -> None:
    """R7, R18: an apartment's shutdown releases its proxy managers."""
    with _stub_lock:
        table = _managers.pop(apt, {})
        effects = [(m.stub, lifetime.step_locked(m.stub, LifeInput.DROP_STRONG))
                   for m in table.values() if m.count.end()]
    for stub, effect in effects:
        lifetime.carry_out(stub, effect)


# --------------------------------------------------------------------------- proxies
class Proxy:
    """A reference to an object in another apartment, bound to the apartment that
    unmarshalled it (R12). Calls through it are COM calls (R13). Each belongs to its
    apartment's one proxy manager for the object (R34); identity is Python identity."""

    _com_kind_ = "proxy"
    _com_proxy_ifaces_: tuple[type[Interface], ...] = ()

    def __init__(self, manager: ProxyManager) -> None:
        self._manager = manager
        self._stub = manager.stub
        self._apartment = manager.apartment

    def __repr__(self) -> str:
        names = ",".join(i.__name__ for i in self._com_proxy_ifaces_)
        return (f"<proxy {names} to {type(self._stub.obj).__name__} in "
                f"{self._stub.apartment.name!r}, bound to {self._apartment.name!r}>")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name.startswith("_com"):
            raise AttributeError(name)
        others = [i.__name__ for i in self._stub.interfaces if name in i._com_methods_]
        hint = (f"; QueryInterface({others[0]}) first" if others else "")
        raise NoSuchMethod(
            f"{'/'.join(i.__name__ for i in self._com_proxy_ifaces_)} declares no method "
            f"{name!r}{hint}; nothing was sent",
        )

    def _check_use(self) -> Apartment:
        w = WHERE.get()
        current = w.apartment if w is not None else None
        code = identity.use_status(current, self._apartment, self._apartment._accepting,
                                   self._manager.count.live)
        if code:
            raise COMError(code, _use_text(code, self))
        assert current is not None
        return current

    def QueryInterface(self, iface: type[T]) -> T:
        """The manager's one proxy for ``iface``, one count added (R25, R34); ``IUnknown``
        gives the same object from every proxy of the manager; ``ICallFactory``, which every
        proxy has, gives the proxy whose ``CreateCall`` makes call objects (R19).

        Raises:
            COMError: R12's checks; CO_E_OBJNOTCONNECTED once the manager's count reached 0;
                E_NOINTERFACE when the object lacks ``iface``.
        """
        self._check_use()
        wanted = _check_interface(iface)
        if not offers(self._stub, wanted, False):
            raise COMError(hr.E_NOINTERFACE, f"{type(self._stub.obj).__name__} does not "
                                             f"implement {wanted.__name__}")
        mgr = self._manager
        with _stub_lock:
            mgr.count.add()
            return cast(T, mgr.proxy(wanted))

    def AddRef(self) -> int:
        """One more count on the manager; 0 once it has left its apartment (R34)."""
        with _stub_lock:
            return self._manager.count.add()

    def Release(self) -> int:
        """Always allowed (R12); 0 once the manager has left its apartment (R34). The last
        Release releases the manager's reference on the stub (R7)."""
        return self._manager.release()


def _use_text(code: int, proxy: Proxy) -> str:
    if code == hr.CO_E_NOTINITIALIZED:
        return "a proxy was used from code in no apartment; use it inside an apartment's run()"
    if code == hr.CO_E_OBJNOTCONNECTED and not proxy._manager.count.live:
        return ("the proxy was released (its proxy manager's count reached 0) or its "
                f"apartment {proxy._apartment.name!r} shut down; the proxy is dead: unmarshal "
                "the object again")
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
            # R19, R26: a proxy's ICallFactory is the client's own, whatever route gave it
            ns[name] = (_create_call if spec.interface is ICallFactory
                        else _proxy_method(spec, sync_call))
    bases: tuple[type, ...] = (Proxy, *[i for i in ifaces if i is not IUnknown])
    cls = type("Proxy_" + "_".join(i.__name__ for i in ifaces), bases, ns)
    _proxy_classes[ifaces] = cls
    return cls


def _create_call(self: Proxy, async_iface: type[Interface], outer: Any = None) -> Any:
    """``ICallFactory.CreateCall`` on a proxy: a call object at once (R19), never a COM call
    (R26: the server object's own ``CreateCall`` is its stub's to call).

    Raises:
        COMError: R12's checks; E_NOINTERFACE for an interface that is not an async one or
            whose synchronous interface the object lacks; E_INVALIDARG (also a TypeError)
            for an ``outer`` without ``Signal()`` (R24).
    """
    return CallFactory(self).CreateCall(async_iface, outer)


def _proxy_method(spec: MethodSpec, sync_call: Any) -> Any:
    def method(self: Proxy, *args: Any, **kwargs: Any) -> Any:
        if self._manager.count.refs.count <= 0:
            return _refused(self, spec)  # R34: a dead proxy
        return sync_call(self, spec, args, kwargs)

    method.__name__ = spec.name
    method.__qualname__ = f"{spec.interface.__name__}.{spec.name}"
    method.__doc__ = f"COM call {spec.interface.__name__}.{spec.name}{spec.signature}"
    return method


async def _refused(proxy: Proxy, spec: MethodSpec) -> Any:
    """A call through a proxy whose manager has left its apartment (R34): R12's checks, then
    CO_E_OBJNOTCONNECTED; nothing is sent."""
    try:
        proxy._check_use()
    except COMError as exc:
        raise COMError(exc.hresult, f"{spec.interface.__name__}.{spec.name}: {exc.text}; "
                                    "nothing was sent") from None
    raise AssertionError("a dead proxy passed its use check")  # pragma: no cover
