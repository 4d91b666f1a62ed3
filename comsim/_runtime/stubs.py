"""Stubs: the server-side end of an exported object's connections (R7, R17)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .._core.stub import Connection
from .objects import (
    CoClass,
    ICallFactory,
    Interface,
    IUnknown,
    home_apartment,
    interfaces_of,
)

if TYPE_CHECKING:
    from .apartment import Apartment


_stub_lock = threading.Lock()


class Stub:
    """The server-side end of an object's connections: one per exported object."""

    __slots__ = ("apartment", "call_factory", "conn", "id", "interfaces", "obj", "running")

    def __init__(self, obj: CoClass, apartment: Apartment) -> None:
        self.id = apartment._rt._stub_ids.__next__()
        self.obj = obj
        self.apartment = apartment
        self.conn = Connection.CONNECTED
        self.running = 0
        self.interfaces = interfaces_of(type(obj))
        #: the object makes its own call objects: calls to it go through them (R26)
        self.call_factory = isinstance(obj, ICallFactory)

    def implements(self, iface: type[Interface]) -> bool:
        return iface is IUnknown or iface in self.interfaces

    def __repr__(self) -> str:
        return f"<Stub {type(self.obj).__name__} in {self.apartment.name} {self.conn.value}>"


def stub_for(obj: CoClass) -> Stub:
    """The object's current stub; a new one after CoDisconnectObject (R17)."""
    stub: Stub | None = obj.__dict__.get("_com_stub")
    if stub is not None and stub.conn is Connection.CONNECTED:
        return stub
    apt = home_apartment(obj)
    with _stub_lock:
        stub = obj.__dict__.get("_com_stub")
        if stub is None or stub.conn is not Connection.CONNECTED:
            stub = Stub(obj, apt)
            obj.__dict__["_com_stub"] = stub
            apt._stubs[stub.id] = stub
    return stub
