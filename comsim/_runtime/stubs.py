"""Stubs: the server-side end of an exported object's connections (R7, R17).

A stub's life (its strong and weak references, when it goes) is ``_core.lifetime.StubLife``;
``lifetime`` (the runtime module) makes stubs and carries out what the core decides.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .._core.lifetime import LifeEffect, StubLife
from .._core.stub import Connection, after_disconnect
from .objects import (
    CoClass,
    ICallFactory,
    Interface,
    IUnknown,
    interfaces_of,
)

if TYPE_CHECKING:
    from .apartment import Apartment


#: guards every stub's life, its running calls and connection (R17), and every proxy
#: manager's count (R7, R34)
_stub_lock = threading.Lock()


class Stub:
    """The server-side end of an object's connections: one per exported object."""

    __slots__ = ("apartment", "call_factory", "conn", "id", "interfaces", "life", "obj",
                 "running")

    def __init__(self, obj: CoClass, apartment: Apartment) -> None:
        self.id = apartment._rt._stub_ids.__next__()
        self.obj = obj
        self.apartment = apartment
        self.conn = Connection.CONNECTED
        self.running = 0
        self.interfaces = interfaces_of(type(obj))
        #: the object makes its own call objects: calls to it go through them (R26)
        self.call_factory = isinstance(obj, ICallFactory)
        self.life = StubLife()  # R7: its references; guarded by ``_stub_lock``

    def implements(self, iface: type[Interface]) -> bool:
        return iface is IUnknown or iface in self.interfaces

    def __repr__(self) -> str:
        return f"<Stub {type(self.obj).__name__} in {self.apartment.name} {self.conn.value}>"


def call_begins(stub: Stub) -> None:
    """A call into the NA object of ``stub`` starts running on its caller's thread (R5): it
    holds the stub until it ends, as a request on its way does (R7), and counts as running
    (R17). Under the stub lock: such calls run on their callers' OS threads, so two may start
    or end at once. (A server task counts its call running inline, its request counted when
    it was sent.)"""
    with _stub_lock:
        stub.life.requests += 1
        stub.running += 1


def call_ends(stub: Stub) -> LifeEffect:
    """The call of ``call_begins`` has ended: R17's last running call of a disconnecting stub
    disconnects it, and its hold ends (R7). Under the stub lock, as ``disconnect`` reads what
    this writes. Gives what the end of the hold decides (the stub goes if it was released
    meanwhile): the caller carries it out."""
    with _stub_lock:
        stub.running -= 1
        if stub.conn is Connection.DISCONNECTING:
            stub.conn = after_disconnect(stub.running)
        return stub.life.answered()


def disconnect(stub: Stub) -> None:
    """R17: the stub goes: disconnecting while calls still run, else disconnected. Under the
    stub lock, so that a call ending on another thread meanwhile is counted (``call_ends``)."""
    with _stub_lock:
        stub.conn = after_disconnect(stub.running)
