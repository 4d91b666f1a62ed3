"""Interfaces, server objects and the COM interfaces comsim implements."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .._core import hresult as hr
from .._core import rules
from .._core.check import BadArgumentType, BadArgumentValue
from .._core.hresult import COMError
from .._core.iface import MethodSpec, collect_methods
from .._core.refcount import RefCount
from .._core.text import safe_repr
from .context import WHERE

if TYPE_CHECKING:
    from .apartment import Apartment

T = TypeVar("T")


class Interface:
    """Base of every COM interface. Declare methods as ``async def`` stubs::

        class ICalc(comsim.Interface):
            async def Add(self, a: int, b: int) -> int: ...

    ``iid`` is derived from the name unless the class sets it.
    """

    iid: ClassVar[str]
    _com_methods_: ClassVar[dict[str, MethodSpec]] = {}
    _com_is_interface_: ClassVar[bool] = False
    _com_sync_interface_: ClassVar[type[Interface] | None] = None

    if TYPE_CHECKING:  # IUnknown's methods, on every interface (objects, proxies... have them)
        def QueryInterface(self, iface: type[T]) -> T: ...

        def AddRef(self) -> int: ...

        def Release(self) -> int: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "_com_kind_", None) is not None:
            return  # a server object, proxy, call object or event: not an interface
        cls._com_is_interface_ = True
        if "iid" not in cls.__dict__:
            cls.iid = "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"comsim:{cls.__qualname__}")) + "}"
        methods: dict[str, MethodSpec] = {}
        for base in reversed(cls.__mro__[1:]):
            if getattr(base, "_com_is_interface_", False) and base is not cls:
                methods.update(getattr(base, "_com_methods_", {}))
        for name, func in collect_methods(cls, dict(cls.__dict__)).items():
            if name in _IUNKNOWN:
                raise BadArgumentValue(f"{cls.__name__}.{name}: {name} is IUnknown's own "
                                       "method, which every object and proxy has; give the "
                                       "interface's method another name")
            methods[name] = MethodSpec(cls, name, func)
        cls._com_methods_ = methods


_IUNKNOWN = frozenset({"QueryInterface", "AddRef", "Release"})


class IUnknown(Interface):
    """Every COM object implements IUnknown: QueryInterface, AddRef, Release."""

    iid = "{00000000-0000-0000-C000-000000000046}"


def interfaces_of(cls: type) -> tuple[type[Interface], ...]:
    """The interfaces a class implements, most derived first (IUnknown excluded); kept on the
    class itself (its own ``_com_interfaces_``: a subclass finds its own), as every object
    exported (``stubs.Stub``) asks."""
    known = cls.__dict__.get("_com_interfaces_")
    if known is not None:
        return known
    found = tuple(
        b for b in cls.__mro__ if b.__dict__.get("_com_is_interface_") is True and b is not IUnknown
    )
    try:
        type.__setattr__(cls, "_com_interfaces_", found)
    except (TypeError, AttributeError):  # a class that takes no attributes: asked each time
        pass
    return found


def _is_interface(iface: Any) -> bool:
    """An interface class itself (a CoClass inherits the flag from its interfaces: not one)."""
    return isinstance(iface, type) and iface.__dict__.get("_com_is_interface_") is True


def _check_interface(iface: Any) -> type[Interface]:
    if not _is_interface(iface):
        raise BadArgumentType(f"{safe_repr(iface)} is not a comsim.Interface")
    return iface


class CoClass:
    """Base of server objects. An object lives in the apartment that constructed it (R1).

    Subclasses that define ``__init__`` must call ``super().__init__()``.

    Raises:
        COMError(CO_E_NOTINITIALIZED): constructed outside any apartment.
    """

    _com_kind_: ClassVar[str] = "coclass"
    #: how a cancel reaches this object's methods (R30): "interrupt" or "cooperative"
    cancel_policy: ClassVar[str] = "interrupt"
    #: where ``CoCreateInstance`` places it (R33): "Apartment", "Free", "Both", "Neutral" or
    #: None (the main STA); direct construction (``Calc()``) ignores it
    threading_model: ClassVar[str | None] = "Both"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A class's ``cancel_policy`` is checked where it is written (R30). A method of its
        interfaces that it does not define fails with E_NOTIMPL (the interface's declaration
        is no implementation).

        Raises:
            COMError(E_INVALIDARG), also a ValueError: an unknown ``cancel_policy``.
        """
        super().__init_subclass__(**kwargs)
        for iface in interfaces_of(cls):
            if is_async_interface(iface):
                continue  # a call object's Begin_/Finish_ (their declarations raise)
            for name, spec in iface._com_methods_.items():
                declared = spec.interface.__dict__.get(name)
                if declared is not None and getattr(cls, name, None) is declared:
                    type.__setattr__(cls, name, _not_implemented(cls.__name__, spec))
        policy = cls.__dict__.get("cancel_policy")
        if policy is not None:
            try:
                rules.interrupts(policy)
            except ValueError as exc:
                raise BadArgumentValue(f"{cls.__name__}.cancel_policy: {exc}") from None
    _com_apartment: Apartment
    _com_refs: RefCount

    def __init__(self) -> None:
        w = WHERE.get()
        if w is None:
            raise COMError(
                hr.CO_E_NOTINITIALIZED,
                f"{type(self).__name__}() was constructed outside any apartment; construct it "
                "inside one (e.g. `await sta.run(make_object)`)",
            )
        self._com_apartment = w.apartment
        self._com_refs = RefCount()

    def QueryInterface(self, iface: type[T]) -> T:
        """This object as ``iface`` (it is its own interface pointer), one reference added.

        Raises:
            COMError(E_NOINTERFACE): the object does not implement ``iface``.
        """
        iface_t = _check_interface(iface)
        if iface_t is IUnknown or isinstance(self, iface_t):
            self.AddRef()
            return self  # type: ignore[return-value]
        raise COMError(
            hr.E_NOINTERFACE,
            f"{type(self).__name__} does not implement {iface_t.__name__}",
        )

    def _refs(self) -> RefCount:
        # (a subclass whose __init__ did not call super().__init__ has none yet)
        refs: RefCount | None = self.__dict__.get("_com_refs")
        if refs is None:
            refs = self._com_refs = RefCount()
        return refs

    def AddRef(self) -> int:
        """One more reference (R25): the new count."""
        return self._refs().add()

    def Release(self) -> int:
        """One reference less, never below 0 (R25): the new count."""
        return self._refs().release()


def free_threaded(obj: Any) -> bool:
    """Whether ``obj`` is free-threaded (its class sets ``_com_free_threaded_ = True``, as
    comsim's events do): it crosses apartments by reference and any apartment uses it
    directly. Asked of the class, not the object: an instance's ``__getattr__`` (a mock, an
    attribute dictionary) answers any name, and such a value is data, copied (R11)."""
    return getattr(type(obj), "_com_free_threaded_", False) is True


def home_apartment(obj: CoClass) -> Apartment:
    try:
        return obj._com_apartment
    except AttributeError:
        raise COMError(
            hr.CO_E_NOTINITIALIZED,
            f"{type(obj).__name__}.__init__ did not call super().__init__(), so the object "
            "belongs to no apartment",
        ) from None


# --------------------------------------------------------------------------- async interfaces
_async_cache: dict[type, type[Interface]] = {}


def async_interface(iface: type[Interface]) -> type[Interface]:
    """``AsyncIX`` for ``IX``: ``Begin_M`` and ``Finish_M`` for every method M (R20).

    ``Begin_M`` takes M's in-parameters and returns ``S_OK``; ``Finish_M`` is awaited and
    gives M's result. The same class is returned for the same interface.

    Raises:
        COMError(E_INVALIDARG), also a TypeError: ``iface`` is not a synchronous interface
            (a CoClass, an async interface, anything else).
    """
    if not _is_interface(iface) or is_async_interface(iface):
        raise BadArgumentType(f"async_interface({safe_repr(iface)}): pass a synchronous "
                              "comsim.Interface declared with async methods (e.g. ICalc)")
    cached = _async_cache.get(iface)
    if cached is not None:
        return cached
    ns: dict[str, Any] = {"__module__": iface.__module__, "__qualname__": "Async" + iface.__name__}
    for name, spec in iface._com_methods_.items():
        ns["Begin_" + name] = _make_begin_stub(spec)
        ns["Finish_" + name] = _make_finish_stub(spec)
    ns["_com_sync_interface_"] = iface
    cls = type("Async" + iface.__name__, (Interface,), ns)
    _async_cache[iface] = cls
    return cls


def _make_begin_stub(spec: MethodSpec) -> Callable[..., Any]:
    def begin(self: Any, *args: Any) -> int:
        raise NotImplementedError

    begin.__signature__ = spec.signature.replace(  # type: ignore[attr-defined]
        parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
                    *spec.signature.parameters.values()]
    )
    begin.__name__ = "Begin_" + spec.name
    return begin


def _make_finish_stub(spec: MethodSpec) -> Callable[..., Any]:
    async def finish(self: Any) -> Any:
        raise NotImplementedError

    finish.__name__ = "Finish_" + spec.name
    return finish


def _not_implemented(owner: str, spec: MethodSpec) -> Callable[..., Any]:
    """What a CoClass that does not define ``spec``'s method has in its place: E_NOTIMPL."""
    where = f"{owner}.{spec.name}"
    text = (f"{where}: {owner} implements {spec.interface.__name__} but does not define "
            f"{spec.name}; define it in the class (E_NOTIMPL)")

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise COMError(hr.E_NOTIMPL, text)

    def sync_method(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise COMError(hr.E_NOTIMPL, text)

    made = method if spec.is_async else sync_method
    made.__name__ = spec.name
    made.__qualname__ = where
    return made


def is_async_interface(iface: Any) -> bool:
    return isinstance(iface, type) and getattr(iface, "_com_sync_interface_", None) is not None


# --------------------------------------------------------------------------- COM interfaces
class ICallFactory(Interface):
    """Creates call objects for asynchronous calls (R19, R26)."""

    iid = "{1C733A30-2A1C-11CE-ADE5-00AA0044773D}"

    def CreateCall(self, async_iface: type[Interface], outer: Any = None) -> Any:
        raise NotImplementedError


class ISynchronize(Interface):
    """A waitable event (R23): ``Wait(flags, ms)``, ``Signal()``, ``Reset()``."""

    iid = "{00000030-0000-0000-C000-000000000046}"

    async def Wait(self, flags: int, milliseconds: int) -> int:
        raise NotImplementedError

    def Signal(self) -> int:
        raise NotImplementedError

    def Reset(self) -> int:
        raise NotImplementedError


class ICancelMethodCalls(Interface):
    """Cancels the call of a call object (R27, R28): ``Cancel(seconds)``, ``TestCancel()``."""

    iid = "{00000029-0000-0000-C000-000000000046}"

    async def Cancel(self, seconds: float) -> int:
        raise NotImplementedError

    def TestCancel(self) -> int:
        raise NotImplementedError


class IMessageFilter(Interface):
    """An STA's message filter (R16). Override the three methods; the defaults handle every
    call, retry rejected calls never, and let queued work in."""

    iid = "{00000016-0000-0000-C000-000000000046}"

    def HandleInComingCall(self, call_type: int, caller_thread: int, tick_count: int,
                           interface_info: tuple[type[Interface], str]) -> int:
        return 0  # SERVERCALL_ISHANDLED

    def RetryRejectedCall(self, callee_thread: int, tick_count: int, reject_type: int) -> int:
        return -1

    def MessagePending(self, callee_thread: int, tick_count: int, pending_type: int) -> int:
        return 2  # PENDINGMSG_WAITDEFPROCESS
