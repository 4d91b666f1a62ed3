"""HRESULT codes and :class:`COMError`.

HRESULTs are 32-bit values. comsim exposes them as *signed* ints, as comtypes and pywin32 do,
and prints them as unsigned hex (``RPC_E_CALL_CANCELED (0x80010002)``).
"""

from __future__ import annotations

from typing import Any

from .text import safe_repr


def _signed(value: int) -> int:
    """Turn an unsigned 32-bit HRESULT into the signed int comsim uses."""
    value &= 0xFFFFFFFF
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value


def unsigned(hr: int) -> int:
    """The unsigned 32-bit form of ``hr``."""
    return hr & 0xFFFFFFFF


S_OK = _signed(0x00000000)
S_FALSE = _signed(0x00000001)
E_NOTIMPL = _signed(0x80004001)
E_NOINTERFACE = _signed(0x80004002)
E_FAIL = _signed(0x80004005)
E_INVALIDARG = _signed(0x80070057)
CO_E_NOT_SUPPORTED = _signed(0x80004021)
CLASS_E_NOAGGREGATION = _signed(0x80040110)
CLASS_E_CLASSNOTAVAILABLE = _signed(0x80040111)
REGDB_E_CLASSNOTREG = _signed(0x80040154)
RPC_E_CALL_REJECTED = _signed(0x80010001)
RPC_E_CALL_CANCELED = _signed(0x80010002)
RPC_E_SERVERFAULT = _signed(0x80010105)
RPC_E_CHANGED_MODE = _signed(0x80010106)
RPC_E_DISCONNECTED = _signed(0x80010108)
RPC_E_SERVERCALL_RETRYLATER = _signed(0x8001010A)
RPC_E_SERVERCALL_REJECTED = _signed(0x8001010B)
RPC_E_WRONG_THREAD = _signed(0x8001010E)
RPC_S_CALLPENDING = _signed(0x80010115)
#: (choice) no header defines RPC_E_CALL_PENDING; comsim gives it RPC_S_CALLPENDING's value.
RPC_E_CALL_PENDING = RPC_S_CALLPENDING
RPC_E_CALL_COMPLETE = _signed(0x80010117)
RPC_E_TIMEOUT = _signed(0x8001011F)
RPC_E_NO_SYNC = _signed(0x80010120)
CO_E_CANCEL_DISABLED = _signed(0x80010140)
CO_E_NOTINITIALIZED = _signed(0x800401F0)
CO_E_OBJNOTREG = _signed(0x800401FB)
CO_E_OBJNOTCONNECTED = _signed(0x800401FD)
RPC_X_BAD_STUB_DATA = _signed(0x800706F7)

# name lookup: the first name registered for a value wins (RPC_S_CALLPENDING before
# RPC_E_CALL_PENDING, which shares its value).
_NAMES: dict[int, str] = {}
for _name, _value in list(globals().items()):
    if _name.isupper() and isinstance(_value, int) and _value not in _NAMES:
        _NAMES[_value] = _name
_NAMES[RPC_S_CALLPENDING] = "RPC_S_CALLPENDING"

_DESCRIPTIONS: dict[int, str] = {
    S_OK: "success",
    S_FALSE: "success (false)",
    E_NOTIMPL: "not implemented",
    E_NOINTERFACE: "no such interface supported",
    E_FAIL: "unspecified failure",
    E_INVALIDARG: "one or more arguments are invalid",
    CO_E_NOT_SUPPORTED: "not supported",
    CLASS_E_NOAGGREGATION: "class does not support aggregation",
    CLASS_E_CLASSNOTAVAILABLE: "class factory cannot supply the requested class",
    REGDB_E_CLASSNOTREG: "class not registered",
    RPC_E_CALL_REJECTED: "call was rejected by callee",
    RPC_E_CALL_CANCELED: "call was cancelled",
    RPC_E_SERVERFAULT: "the server threw an exception",
    RPC_E_DISCONNECTED: "the object invoked has disconnected from its clients",
    RPC_E_WRONG_THREAD: "the application called an interface that was marshalled for a "
    "different thread",
    RPC_S_CALLPENDING: "the call is pending",
    RPC_E_CALL_COMPLETE: "the call has completed",
    CO_E_CANCEL_DISABLED: "call cancellation is disabled",
    CO_E_NOTINITIALIZED: "CoInitialize has not been called (no apartment)",
    CO_E_OBJNOTREG: "object is not registered",
    CO_E_OBJNOTCONNECTED: "object is not connected to server",
    RPC_X_BAD_STUB_DATA: "the stub received bad data",
}


def name(hr: int) -> str:
    """The COM name of ``hr`` (``name(0x80010115) == "RPC_S_CALLPENDING"``), or its hex."""
    known = _NAMES.get(_signed(hr))
    return known if known is not None else f"0x{unsigned(hr):08X}"


def succeeded(hr: int) -> bool:
    """True when ``hr`` is a success code (its severity bit is clear)."""
    return _signed(hr) >= 0


def failed(hr: int) -> bool:
    """True when ``hr`` is a failure code (its severity bit is set)."""
    return _signed(hr) < 0


def describe(hr: int) -> str:
    """``NAME (0xXXXXXXXX)`` for messages."""
    return f"{name(hr)} (0x{unsigned(hr):08X})"


class COMError(Exception):
    """A failure HRESULT raised as an exception.

    ``COMError(hresult, text=None, details=None)``: ``.hresult`` is the signed 32-bit code
    (given signed or unsigned; TypeError for a non-int, ValueError beyond 32 bits),
    ``.text`` says what happened and what to do, ``.details`` carries anything else.
    ``str()`` starts with the name and the unsigned hex, e.g.
    ``RPC_E_CALL_CANCELED (0x80010002): ...``.
    """

    def __init__(self, hresult: int, text: str | None = None, details: Any = None) -> None:
        if isinstance(hresult, bool) or not isinstance(hresult, int):
            raise TypeError(f"COMError: an HRESULT is an int, not {safe_repr(hresult)}")
        if not -0x8000_0000 <= hresult <= 0xFFFF_FFFF:
            raise ValueError(f"COMError: {safe_repr(hresult)} is not a 32-bit HRESULT (signed or "
                             "unsigned)")
        self.hresult = _signed(hresult)
        self.text = text if text is not None else _DESCRIPTIONS.get(self.hresult, "")
        self.details = details
        super().__init__(self.hresult, self.text, details)

    def __str__(self) -> str:
        return f"{describe(self.hresult)}: {self.text}" if self.text else describe(self.hresult)

    def __repr__(self) -> str:
        return f"COMError({name(self.hresult)}, {self.text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.hresult, self.text, None))
