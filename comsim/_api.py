"""Free functions of the public API that ask where the caller runs."""

from __future__ import annotations

from typing import Any

from ._core import hresult as hr
from ._core import rules
from ._core.check import BadArgumentType
from ._core.constants import ApartmentType
from ._core.hresult import COMError
from ._core.text import safe_repr
from ._runtime.apartment import Apartment
from ._runtime.context import WHERE


def current_apartment() -> Apartment | None:
    """The apartment the caller runs in, or None."""
    w = WHERE.get()
    return w.apartment if w is not None else None


def CoGetApartmentType() -> ApartmentType:
    """The caller's apartment type (R4).

    Raises:
        COMError(CO_E_NOTINITIALIZED): the caller runs in no apartment.
    """
    w = WHERE.get()
    if w is None:
        raise COMError(hr.CO_E_NOTINITIALIZED,
                       "CoGetApartmentType: the caller runs in no apartment")
    return w.apartment.type


def current_causality_id() -> int | None:
    """The causality id of the incoming call being handled (R15), or None outside one."""
    w = WHERE.get()
    return w.causality_id if w is not None else None


_FILTER_METHODS = ("HandleInComingCall", "RetryRejectedCall", "MessagePending")


def CoRegisterMessageFilter(message_filter: Any) -> Any:
    """Register the calling STA's message filter (None unregisters); gives the previous one.

    ``message_filter`` is an ``IMessageFilter`` (or any object with its three methods).

    Raises:
        COMError(CO_E_NOT_SUPPORTED): called in the MTA or in no apartment (R16).
        COMError(E_INVALIDARG), also a TypeError: ``message_filter`` is neither None nor a
            message filter.
    """
    if message_filter is not None and not all(
            callable(getattr(message_filter, m, None)) for m in _FILTER_METHODS):
        raise BadArgumentType(
            f"CoRegisterMessageFilter({safe_repr(message_filter)}): not a message filter; pass an "
            f"IMessageFilter (with {', '.join(_FILTER_METHODS)}) or None")
    w = WHERE.get()
    code = rules.check_message_filter_registration(w.apartment.type if w is not None else None)
    if code:
        raise COMError(code, "message filters are for STAs only; register it from code "
                             "running in an STA")
    assert w is not None
    return w.apartment._set_filter(message_filter)
