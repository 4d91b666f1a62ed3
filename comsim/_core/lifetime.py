"""The life of a stub, by reference counts (R7, R17, R18).

A stub holds one reference on its object. Strong references on the stub: each NORMAL marshal
data not yet unmarshalled or released, each unreleased TABLESTRONG data, each GIT entry until
revoked, each proxy manager (R34) with a count above 0. TABLEWEAK data is a weak reference.
Each request on its way to the stub holds it too, from its send until it is answered (run,
refused or dropped): COM's RemRelease reaches an STA server after the requests already sent,
and in Wine a request holds the stub manager from ``GetBuffer`` on.

``TABLE[(state, input, strong_left, weak_left, requests_left)] -> (effect, next_state)``: the
counts are changed first (only while the stub is connected), then the table says whether the
stub goes. It goes when its strong count and its requests are down to 0, whatever weak data
remain (by a release, or by the last request's answer once released), when its last weak data
is released while it has neither, on ``CoDisconnectObject`` and on its apartment's shutdown.
A stub that has gone never comes back: marshalling the object again makes a new stub.
"""

from __future__ import annotations

import enum
import itertools
from typing import Final

from . import hresult as hr
from . import rules
from .constants import MSHLFLAGS


class Life(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    CONNECTED = "connected"
    GONE = "gone"


class LifeInput(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    ADD_STRONG = "add_strong"  # marshal (NORMAL, TABLESTRONG), GIT register, a new proxy manager
    ADD_WEAK = "add_weak"  # marshal TABLEWEAK
    DROP_STRONG = "drop_strong"  # release of such data, GIT revoke, a proxy manager at 0
    DROP_WEAK = "drop_weak"  # release of TABLEWEAK data
    DISCONNECT = "disconnect"  # CoDisconnectObject (R17)
    SHUTDOWN = "shutdown"  # the stub's apartment shuts down (R18)
    ANSWERED = "answered"  # the last request on its way was answered (``StubLife.answered``)


class LifeEffect(enum.Enum):
    """What the runtime does after a step; each ``GO_*`` names the ``reason`` traced with
    ``stub.disconnected``."""

    __hash__ = object.__hash__  # identity: table lookups stay in C
    NOTHING = None
    GO_RELEASED = "released"
    GO_DISCONNECTED = "CoDisconnectObject"
    GO_SHUTDOWN = "shutdown"


_C, _G = Life.CONNECTED, Life.GONE
_I = LifeInput
_X = LifeEffect


def _row(state: Life, inp: LifeInput, strong: bool, weak: bool, requests: bool
         ) -> tuple[LifeEffect, Life]:
    if state is _G:
        return _X.NOTHING, _G  # gone is gone: late releases do nothing
    if inp is _I.DISCONNECT:
        return _X.GO_DISCONNECTED, _G
    if inp is _I.SHUTDOWN:
        return _X.GO_SHUTDOWN, _G
    if requests:
        return _X.NOTHING, _C  # the requests on their way still run (R7)
    if inp in (_I.DROP_STRONG, _I.ANSWERED) and not strong:
        return _X.GO_RELEASED, _G  # whatever weak data remain
    if inp is _I.DROP_WEAK and not strong and not weak:
        return _X.GO_RELEASED, _G
    return _X.NOTHING, _C


_B = (False, True)
TABLE: Final[dict[tuple[Life, LifeInput, bool, bool, bool], tuple[LifeEffect, Life]]] = {
    (s, i, strong, weak, requests): _row(s, i, strong, weak, requests)
    for s, i, strong, weak, requests in itertools.product(Life, LifeInput, _B, _B, _B)
}

_DELTA: Final[dict[LifeInput, tuple[int, int]]] = {
    _I.ADD_STRONG: (1, 0), _I.ADD_WEAK: (0, 1),
    _I.DROP_STRONG: (-1, 0), _I.DROP_WEAK: (0, -1),
    _I.DISCONNECT: (0, 0), _I.SHUTDOWN: (0, 0), _I.ANSWERED: (0, 0),
}


class StubLife:
    """One stub's strong and weak counts, its requests on their way, and whether (and why) it
    has gone."""

    __slots__ = ("reason", "requests", "state", "strong", "weak")

    def __init__(self) -> None:
        self.strong = 0
        self.weak = 0
        self.requests = 0
        self.state = Life.CONNECTED
        #: why it went (``LifeEffect``), None while connected
        self.reason: LifeEffect | None = None

    def step(self, inp: LifeInput) -> LifeEffect:
        """Take ``inp``; the caller serializes steps (the runtime's stub lock)."""
        if self.state is Life.CONNECTED:
            ds, dw = _DELTA[inp]
            self.strong = max(0, self.strong + ds)
            self.weak = max(0, self.weak + dw)
        effect, self.state = TABLE[(self.state, inp, self.strong > 0, self.weak > 0,
                                    self.requests > 0)]
        if effect is not LifeEffect.NOTHING:
            self.reason = effect
        return effect

    def answered(self) -> LifeEffect:
        """A request on its way was answered (``requests`` was counted up as it was sent); the
        caller serializes it with the steps. The last one may let the stub go (ANSWERED)."""
        self.requests -= 1
        if self.requests or self.strong:
            return LifeEffect.NOTHING  # (what the ANSWERED row says, without the lookup)
        return self.answered_last()

    def answered_last(self) -> LifeEffect:
        """``answered`` once it has counted the last request down with no strong reference
        left: the stub goes, if it has not gone already."""
        return self.step(LifeInput.ANSWERED)

    def __repr__(self) -> str:
        return (f"<StubLife {self.state.value} strong={self.strong} weak={self.weak} "
                f"requests={self.requests}>")


def birth(inp: LifeInput, apartment_alive: bool) -> tuple[LifeInput, ...]:
    """R7, R18: the steps a new stub takes: its first reference ``inp``; in an apartment that
    has begun to shut down (whose teardown may have shut its stubs already) also SHUTDOWN: it
    goes at once, traced with reason ``shutdown``, and its data give CO_E_OBJNOTCONNECTED."""
    return (inp,) if apartment_alive else (inp, LifeInput.SHUTDOWN)


def add_input(flags: MSHLFLAGS) -> LifeInput:
    """R7: the reference a new piece of marshal data holds on the stub."""
    return LifeInput.ADD_WEAK if flags is MSHLFLAGS.TABLEWEAK else LifeInput.ADD_STRONG


def drop_input(flags: MSHLFLAGS) -> LifeInput:
    """R7: the reference released with a piece of marshal data."""
    return LifeInput.DROP_WEAK if flags is MSHLFLAGS.TABLEWEAK else LifeInput.DROP_STRONG


def unmarshal_status(connected: bool, server_alive: bool, implements: bool,
                     reason: LifeEffect | None) -> int:
    """R7, R9, R17, R18: connecting to a stub from marshal data, the GIT or a reference.

    Only table-weak data can outlive a stub that went by release: it gives CO_E_OBJNOTREG.
    After CoDisconnectObject or a shutdown every data, weak included, gives
    CO_E_OBJNOTCONNECTED.
    """
    if reason is LifeEffect.GO_RELEASED:
        return hr.CO_E_OBJNOTREG
    return rules.unmarshal_status(connected, server_alive, implements)


def released_normal_status(at_home: bool) -> int:
    """R7: released NORMAL data unmarshals to a disconnected proxy (S_OK); at home, where
    there is no proxy to give, it fails with CO_E_OBJNOTCONNECTED (choice)."""
    return hr.CO_E_OBJNOTCONNECTED if at_home else hr.S_OK
