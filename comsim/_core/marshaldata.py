"""The life of marshal data and of Global Interface Table entries (R6, R7, R10, R17).

``TABLE[(flags, state, input)] -> (next_state, HRESULT, Hold)``: ``S_OK`` lets the unmarshal
proceed; a failure code is what it raises. ``Hold`` says what becomes of the reference the
data holds on the stub (R7; ``lifetime`` counts it, ``identity`` places it).
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


class Hold(enum.Enum):
    """What a step does with the data's reference on the stub (R7)."""

    __hash__ = object.__hash__  # identity: table lookups stay in C
    KEEP = "keep"  # nothing changes
    MOVE = "move"  # a normal unmarshal: the data's strong reference moves to the proxy manager
    TAKE = "take"  # a table unmarshal: the data keeps its reference; the route takes its own
    DROP = "drop"  # released: the data's reference on the stub is released
    DEAD = "dead"  # released normal data unmarshals to a disconnected proxy (never shared)


_N, _S, _W = MSHLFLAGS.NORMAL, MSHLFLAGS.TABLESTRONG, MSHLFLAGS.TABLEWEAK
_L, _C, _R = DataState.LIVE, DataState.CONSUMED, DataState.RELEASED
_U, _X = DataInput.UNMARSHAL, DataInput.RELEASE
_K, _M, _T, _D = Hold.KEEP, Hold.MOVE, Hold.TAKE, Hold.DROP

TABLE: Final[dict[tuple[MSHLFLAGS, DataState, DataInput], tuple[DataState, int, Hold]]] = {
    # R6: a normal marshal is unmarshalled once
    (_N, _L, _U): (_C, hr.S_OK, _M),
    (_N, _C, _U): (_C, hr.CO_E_OBJNOTCONNECTED, _K),
    # R7: released normal data gives a disconnected proxy (CO_E_OBJNOTCONNECTED at home)
    (_N, _R, _U): (_R, hr.S_OK, Hold.DEAD),
    (_N, _L, _X): (_R, hr.S_OK, _D),
    (_N, _C, _X): (_C, hr.S_OK, _K),  # releasing consumed normal data does nothing
    (_N, _R, _X): (_R, hr.S_OK, _K),  # releasing twice does nothing
    # R7: table-strong, any number of times until released
    (_S, _L, _U): (_L, hr.S_OK, _T),
    (_S, _R, _U): (_R, hr.CO_E_OBJNOTCONNECTED, _K),
    (_S, _L, _X): (_R, hr.S_OK, _D),
    (_S, _R, _X): (_R, hr.S_OK, _K),
    # R7: table-weak, any number of times; once released, CO_E_OBJNOTREG
    (_W, _L, _U): (_L, hr.S_OK, _T),
    (_W, _R, _U): (_R, hr.CO_E_OBJNOTREG, _K),
    (_W, _L, _X): (_R, hr.S_OK, _D),
    (_W, _R, _X): (_R, hr.S_OK, _K),
}


class MarshalData:
    """The rules part of one piece of marshal data: its flags and where it stands."""

    __slots__ = ("flags", "state")

    def __init__(self, flags: MSHLFLAGS) -> None:
        self.flags = MSHLFLAGS(flags)
        self.state = DataState.LIVE

    def step(self, inp: DataInput) -> int:
        return self.advance(inp)[0]

    def advance(self, inp: DataInput) -> tuple[int, Hold]:
        """Take ``inp``: its HRESULT and what becomes of the data's reference (R7)."""
        self.state, code, hold = TABLE[(self.flags, self.state, inp)]
        return code, hold


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
