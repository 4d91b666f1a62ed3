"""Identity: one proxy manager per object per apartment, one count per manager (R34, R25).

Every route that brings an object into an apartment (unmarshalling any data, the GIT's get,
an object reference in an argument or result) ends in ``ROUTE[(where, hold)] ->
(build, strong_delta)``: ``where`` is the object's own apartment (``HOME``: the object itself),
an apartment holding a live manager for it (``LIVE``: that manager, one more count) or none
(``NEW``: a new manager with count 1); ``hold`` is what the route's data does with its
reference on the stub (``marshaldata.Hold``); ``strong_delta`` is the change of the stub's
strong count (R7): a new manager is one strong reference, a moved NORMAL reference is one
already counted.
"""

from __future__ import annotations

import enum
from typing import Final

from . import hresult as hr
from . import rules
from .marshaldata import Hold
from .refcount import RefCount


class Where(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    HOME = "home"  # the route ends in the object's own apartment (R8)
    LIVE = "live"  # the apartment holds a manager for the object with a count above 0
    NEW = "new"  # no manager there (or only one that has died or whose stub has gone)


class Build(enum.Enum):
    __hash__ = object.__hash__  # identity: table lookups stay in C
    OBJECT = "object"  # give the object itself, one reference added (R8, R34)
    JOIN = "join"  # give the live manager's proxy, its count one up
    BUILD = "build"  # build a new manager, count 1, and register it in the apartment


_H, _L, _N = Where.HOME, Where.LIVE, Where.NEW

ROUTE: Final[dict[tuple[Where, Hold], tuple[Build, int]]] = {
    # NORMAL data, references in arguments and results: the data's reference moves
    (_N, Hold.MOVE): (Build.BUILD, 0),
    (_L, Hold.MOVE): (Build.JOIN, -1),  # the manager already holds one: the data's goes
    (_H, Hold.MOVE): (Build.OBJECT, -1),
    # table data and the GIT: the data keeps its reference; a new manager takes one
    (_N, Hold.TAKE): (Build.BUILD, 1),
    (_L, Hold.TAKE): (Build.JOIN, 0),
    (_H, Hold.TAKE): (Build.OBJECT, 0),
}

#: a route that fails (E_NOINTERFACE, disconnected): what becomes of the stub's strong count.
#: R9: failed NORMAL data is consumed all the same, so its reference is released
FAILED: Final[dict[Hold, int]] = {Hold.MOVE: -1, Hold.TAKE: 0}


def where(at_home: bool, live_manager: bool) -> Where:
    """R34: where a route ends."""
    if at_home:
        return Where.HOME
    return Where.LIVE if live_manager else Where.NEW


def proxy_key(iface: type, all_ifaces: tuple[type, ...], unknown: type) -> tuple[type, ...]:
    """R34: which of a manager's proxies an interface gives. One proxy per interface; IUnknown
    gives the proxy for every interface of the object (the manager's identity, which is also
    what an object reference in an argument or result gives, R11)."""
    return all_ifaces if iface is unknown else (iface,)


def use_status(current: object | None, home: object, home_alive: bool, live: bool) -> int:
    """R12, R34: using a proxy. No apartment first; then a proxy whose manager has left its
    apartment (count 0) or whose apartment has gone: CO_E_OBJNOTCONNECTED; then the wrong
    apartment."""
    if current is not None and not live:
        return hr.CO_E_OBJNOTCONNECTED
    return rules.check_proxy_use(current, home, home_alive)


class ManagerCount:
    """A proxy manager's one count (R25, R34): every route, QueryInterface and AddRef add one;
    Release takes one. At 0 the manager has left its apartment for good: AddRef and Release
    give 0 (choice)."""

    __slots__ = ("refs",)

    def __init__(self) -> None:
        self.refs = RefCount(1, revives=False)

    @property
    def live(self) -> bool:
        return self.refs.count > 0

    def add(self) -> int:
        return self.refs.add()

    def release(self) -> tuple[int, bool]:
        """Release: the new count, and whether this release made the manager leave."""
        before = self.refs.count
        after = self.refs.release()
        return after, before > 0 and after == 0

    def end(self) -> bool:
        """The apartment shuts down (R7, R18): the count drops to 0; whether it was live."""
        was = self.refs.count > 0
        self.refs.count = 0
        return was
