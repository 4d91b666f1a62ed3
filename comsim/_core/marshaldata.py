"""The life of marshal data and of Global Interface Table entries (R6, R7, R10, R17).

``TABLE[(flags, state, input)] -> (next_state, HRESULT)``: ``S_OK`` lets the unmarshal
proceed; a failure code is what it raises.
"""

from __future__ import annotations

import enum
from typing import Final

from . import hresult as hr
from .constants import MSHLFLAGS


class DataState(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    LIVE = "live"
    CONSUMED = "consumed"  # a normal marshal, unmarshalled once
    RELEASED = "released"  # release_marshal_data was called


class DataInput(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    UNMARSHAL = "unmarshal"
    RELEASE = "release"


_N, _S, _W = MSHLFLAGS.NORMAL, MSHLFLAGS.TABLESTRONG, MSHLFLAGS.TABLEWEAK
_L, _C, _R = DataState.LIVE, DataState.CONSUMED, DataState.RELEASED
_U, _X = DataInput.UNMARSHAL, DataInput.RELEASE

TABLE: Final[dict[tuple[MSHLFLAGS, DataState, DataInput], tuple[DataState, int]]] = {
    # R6: a normal marshal is unmarshalled once
    (_N, _L, _U): (_C, hr.S_OK),
    (_N, _C, _U): (_C, hr.CO_E_OBJNOTCONNECTED),
    (_N, _R, _U): (_R, hr.CO_E_OBJNOTCONNECTED),
    (_N, _L, _X): (_R, hr.S_OK),
    (_N, _C, _X): (_C, hr.S_OK),  # releasing consumed normal data does nothing
    (_N, _R, _X): (_R, hr.S_OK),  # releasing twice does nothing
    # R7: table-strong, any number of times until released
    (_S, _L, _U): (_L, hr.S_OK),
    (_S, _R, _U): (_R, hr.CO_E_OBJNOTCONNECTED),
    (_S, _L, _X): (_R, hr.S_OK),
    (_S, _R, _X): (_R, hr.S_OK),
    # R7: table-weak, any number of times; once released, CO_E_OBJNOTREG
    (_W, _L, _U): (_L, hr.S_OK),
    (_W, _R, _U): (_R, hr.CO_E_OBJNOTREG),
    (_W, _L, _X): (_R, hr.S_OK),
    (_W, _R, _X): (_R, hr.S_OK),
}


class MarshalData:
    """The rules part of one piece of marshal data: its flags and where it stands."""

    __slots__ = ("flags", "state")

    def __init__(self, flags: MSHLFLAGS) -> None:
        self.flags = MSHLFLAGS(flags)
        self.state = DataState.LIVE

    def step(self, inp: DataInput) -> int:
        self.state, code = TABLE[(self.flags, self.state, inp)]
        return code


class GitEntry:
    """One Global Interface Table registration (R10)."""

    __slots__ = ("revoked",)

    def __init__(self) -> None:
        self.revoked = False

    def get(self) -> int:
        return hr.E_INVALIDARG if self.revoked else hr.S_OK

    def revoke(self) -> int:
        if self.revoked:
            return hr.E_INVALIDARG
        self.revoked = True
        return hr.S_OK
