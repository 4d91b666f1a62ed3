"""``CoCreateInstance`` (R33): the core's table (``comsim._core.activation``) says where the
object goes; this module finds or makes that apartment, runs ``cls()`` there as a unit (inline
in the NA), and gives the creator the object itself at home, else a proxy bound to the
creator's apartment, made by the marshal/unmarshal route (R34)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .._core import activation as core
from .._core import hresult as hr
from .._core.check import BadArgumentType
from .._core.constants import ApartmentType
from .._core.hresult import COMError
from .._core.text import describe, safe_repr
from .boundary import own_ref
from .context import UNDER, WHERE, Where
from .objects import CoClass, IUnknown, _is_interface
from .objref import marshal_interface, release_marshal_data, unmarshal_interface

T = TypeVar("T")


def _under(where: Where) -> Where | None:
    """For code in the NA, the code whose thread is in it (None: no apartment)."""
    return UNDER.get() if where.apartment.type is ApartmentType.NA else None


def _thread_sta(where: Where) -> Any:
    under = _under(where)
    assert under is not None  # the table gives THREAD_STA only for NA_ON_STA
    return under.apartment


#: how the runtime finds each placement's apartment (the choice is the core's table)
_TARGET: dict[core.Placement, Callable[[Any, Where], Any]] = {
    core.Placement.CREATOR: lambda rt, w: w.apartment,
    core.Placement.MTA: lambda rt, w: rt.mta,
    core.Placement.NA: lambda rt, w: rt.nta,
    core.Placement.HOST_STA: lambda rt, w: rt._host_sta(),
    core.Placement.MAIN_STA: lambda rt, w: _main_sta(rt),
    core.Placement.THREAD_STA: lambda rt, w: _thread_sta(w),
}


def _main_sta(rt: Any) -> Any:
    """R33: the main STA; the host STA, made the main STA, when no STA exists."""
    for apt in rt.apartments:
        if apt.type is ApartmentType.MAINSTA:
            return apt
    return rt._host_sta()


def _construct(cls: type[CoClass], iface: type[Any], at_home: bool,
               made: list[Any] | None = None) -> Any:
    """In the target apartment: ``cls()``, checked for ``iface``; the object itself for the
    creator's own apartment, else its marshal data (the construction's reference goes to the
    stub: the proxy will hold the only strong reference, R7).

    Raises:
        COMError(hr): the constructor raised ``COMError(hr)``.
        COMError(E_FAIL): it raised anything else, ``SystemExit``, ``KeyboardInterrupt`` and
            ``CancelledError`` included (R33; the fault boundary, ``boundary``: ``cls()`` is
            synchronous, so a ``CancelledError`` from it is its own, not a cancel of the task).
        COMError(E_NOINTERFACE): the object does not implement ``iface`` (it is released).
    """
    name = cls.__name__
    try:
        obj = cls()
    except COMError:
        raise
    except BaseException as exc:  # (choice) anything else: E_FAIL
        raise COMError(hr.E_FAIL, f"CoCreateInstance({name}, ...): {name}() raised "
                                  f"{describe(exc)}; fix the constructor "
                                  "(raise COMError(hr) for a chosen HRESULT)") from exc
    if iface is not IUnknown and not isinstance(obj, iface):
        own_ref(obj, "Release")  # the object goes
        raise COMError(hr.E_NOINTERFACE, f"CoCreateInstance({name}, {iface.__name__}): {name} "
                                         f"does not implement {iface.__name__}; ask for an "
                                         "interface it implements")
    if at_home:
        return obj
    stream = marshal_interface(obj, iface)
    own_ref(obj, "Release")
    if made is not None:
        made.append(stream)  # the creator releases it if it is cancelled before it unmarshals
    return stream


async def CoCreateInstance(cls: type[Any], iface: type[T]) -> T:
    """Create an object of ``cls`` where its ``threading_model`` says (R33) and give it as
    ``iface``: the object itself when it lives in the caller's apartment, else a proxy bound
    to the caller's apartment. The constructor runs as a unit of the target apartment (inline
    in the NA); waiting for it is a COM wait.

    Raises:
        COMError(CO_E_NOTINITIALIZED): called from code in no apartment.
        COMError(REGDB_E_CLASSNOTREG): ``cls`` is not a CoClass subclass, or its
            ``threading_model`` is not "Apartment", "Free", "Both", "Neutral" or None.
        COMError(E_INVALIDARG), also a TypeError: ``iface`` is not an interface.
        COMError(E_NOINTERFACE): the object does not implement ``iface`` (it is released).
        COMError(hr): the constructor raised ``COMError(hr)``; E_FAIL for anything else it
            raises, ``SystemExit`` and ``KeyboardInterrupt`` too.
        COMError(RPC_E_DISCONNECTED): the target apartment has shut down, or the runtime is
            ending and cannot make it.
    """
    w = WHERE.get()
    if w is None:
        raise COMError(hr.CO_E_NOTINITIALIZED,
                       f"CoCreateInstance({getattr(cls, '__name__', cls)!r}, ...): the caller "
                       "runs in no apartment; call it from code running inside one")
    is_coclass = isinstance(cls, type) and issubclass(cls, CoClass)
    model = getattr(cls, "threading_model", None) if is_coclass else None
    code = core.class_status(is_coclass, model)
    if code:
        raise COMError(code, f"CoCreateInstance({safe_repr(cls)}, ...): not a registered class; "
                             "pass a comsim.CoClass subclass whose threading_model is one of "
                             f"{', '.join(map(repr, core.MODELS))}")
    if not _is_interface(iface):
        raise BadArgumentType(f"CoCreateInstance({cls.__name__}, {safe_repr(iface)}): the second "
                              "argument must be a comsim.Interface (e.g. ICalc)")
    under = _under(w)
    creator = core.creator_kind(w.apartment.type,
                                under.apartment.type if under is not None else None)
    placement = core.place(creator, model)
    assert isinstance(placement, core.Placement)  # CO_E_NOTINITIALIZED was raised above
    rt = w.runtime
    try:
        target = _TARGET[placement](rt, w)
    except RuntimeError as exc:  # the runtime is ending: it makes no apartment any more (R18)
        raise COMError(hr.RPC_E_DISCONNECTED, f"CoCreateInstance({cls.__name__}, ...): the "
                       f"apartment a {safe_repr(model)} class needs cannot be made: {exc}"
                       ) from None
    if core.result_is_object(target is w.apartment):
        result: T = _construct(cls, iface, True)
        return result
    made: list[Any] = []
    try:
        if target._neutral:
            stream = await target.run(_construct, cls, iface, False, made)  # inline: no wait
        else:
            # a unit of the target; waiting for it is a COM wait (R2)
            stream = await target.run(_construct, cls, iface, False, made, _com_wait=True)
    except BaseException:
        # the creator was cancelled (R32) after the object was made: nobody will unmarshal
        # its data, so it is released and the new object goes with it (R7)
        for data in made:
            release_marshal_data(data)
        raise
    proxy: T = unmarshal_interface(stream, iface)
    return proxy
