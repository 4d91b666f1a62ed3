"""Stub lifetimes, carried out (R7, R17, R18): making stubs, counting their references, and
disconnecting them when ``_core.lifetime`` says so.

Every step of a stub's life is taken under ``stubs._stub_lock``; what a step decides (the stub
goes) is carried out after the lock is released: the stub leaves its apartment and its
object, queued calls fail (on the stub's own thread), ``stub.disconnected`` is traced, and the
stub's reference on the object is released, by the object's own apartment (R1: its
``Release`` is user code; from another apartment, a message to it, as COM's RemRelease).
"""

from __future__ import annotations

import functools
from typing import Any

from .._core import hresult as hr
from .._core.lifetime import Life, LifeEffect, LifeInput, birth
from .._core.stub import Connection
from . import trace
from .boundary import own_ref
from .context import WHERE, on_client_thread, step_on_client
from .objects import CoClass, free_threaded, home_apartment
from .server import fail_queued
from .stubs import Stub, _stub_lock, disconnect


def _shutdown_key(stub: Stub) -> tuple[str, int]:
    return ("comsim.stub", stub.id)


def take(obj: CoClass, inp: LifeInput) -> Stub:
    """The object's connected stub, a new one if it has none (R7: its first marshal, or the
    first after it went), with one reference ``inp`` added."""
    apt = home_apartment(obj)
    effect = LifeEffect.NOTHING
    with _stub_lock:
        stub: Stub | None = obj.__dict__.get("_com_stub")
        made = stub is None or stub.life.state is not Life.CONNECTED
        if made:
            stub = Stub(obj, apt)
            obj.__dict__["_com_stub"] = stub
            apt._stubs[stub.id] = stub
            # R18: in an apartment shutting down, it goes at once (``_core.lifetime.birth``)
            for birth_step in birth(inp, apt._accepting):
                effect = stub.life.step(birth_step)
        else:
            assert stub is not None
            stub.life.step(inp)
    assert stub is not None
    if made:
        own_ref(obj, "AddRef")  # the stub's one reference on its object (R7)
        if effect is LifeEffect.NOTHING:
            # R18: the apartment's shutdown disconnects it
            apt._at_close[_shutdown_key(stub)] = functools.partial(_shut, stub)
        carry_out(stub, effect)
    return stub


def _shut(stub: Stub) -> None:
    step(stub, LifeInput.SHUTDOWN)


def add(stub: Stub, inp: LifeInput) -> bool:
    """One more reference on a stub; False (and nothing added) if it has gone."""
    with _stub_lock:
        if stub.life.state is not Life.CONNECTED:
            return False
        stub.life.step(inp)
    return True


def step(stub: Stub, inp: LifeInput) -> LifeEffect:
    """Take one step of the stub's life and carry out what it decides."""
    with _stub_lock:
        effect = stub.life.step(inp)
    carry_out(stub, effect)
    return effect


def step_locked(stub: Stub, inp: LifeInput) -> LifeEffect:
    """``step`` for a caller that holds ``_stub_lock``; it calls ``carry_out`` once it has let
    go of the lock."""
    return stub.life.step(inp)


def carry_out(stub: Stub, effect: LifeEffect) -> None:
    """The stub goes (R7, R17, R18), unless ``effect`` is NOTHING."""
    if effect is LifeEffect.NOTHING:
        return
    obj = stub.obj
    apt = stub.apartment
    # R17: calls already running finish; queued and new ones fail until they have
    disconnect(stub)
    if obj.__dict__.get("_com_stub") is stub:
        obj.__dict__.pop("_com_stub", None)
    apt._stubs.pop(stub.id, None)
    if effect is not LifeEffect.GO_SHUTDOWN:
        apt._at_close.pop(_shutdown_key(stub), None)
        w = WHERE.get()
        if w is not None and w.apartment is apt:
            # elsewhere the queue is not ours to touch: a queued call finds the stub gone
            # when it is dispatched (``_core.stub.request_status``)
            fail_queued(apt, stub, hr.CO_E_OBJNOTCONNECTED)
    if trace.enabled():
        trace.emit("stub.disconnected", server=apt.name, object=type(obj).__name__,
                   stub=stub.id, reason=effect.value)
    _release_at_home(stub)


def _release_at_home(stub: Stub) -> None:
    """R1, R7: the stub's reference on its object is released in the object's own apartment,
    as COM's RemRelease reaches the stub there (the object's ``Release`` is user code). On its
    thread (its code, or NA code on its thread, R5) at once; from anywhere else posted to its
    loop, in order with the messages it takes in (in its shutdown: at the end of its teardown,
    R18), and run with it current. Once its teardown has ended nothing of it runs any more:
    the caller releases. The NA has no thread (R5): the caller enters it. A free-threaded
    object is anyone's: released at once."""
    obj = stub.obj
    apt = stub.apartment
    w = WHERE.get()
    if (w is not None and w.apartment is apt) or free_threaded(obj):
        own_ref(obj, "Release")
    elif apt._neutral:
        na: Any = apt  # a ``neutral.NeutralApartment``
        tokens = na.enter(w, None, None)
        try:
            own_ref(obj, "Release")
        finally:
            na.leave(tokens)
    elif on_client_thread(apt):  # NA code on the object's thread (R5)
        apt._at_home(own_ref, obj, "Release")
    elif not step_on_client(apt, ("comsim.release", stub.id),
                            functools.partial(apt._at_home, own_ref, obj, "Release")):
        own_ref(obj, "Release")  # its apartment has ended


def disconnected_copy(stub: Stub) -> Stub:
    """R7: the stand-in stub of a proxy unmarshalled from released NORMAL data: calls through
    it fail with RPC_E_DISCONNECTED; it holds nothing and is shared by no one."""
    dead = Stub(stub.obj, stub.apartment)
    dead.conn = Connection.DISCONNECTED
    dead.life.step(LifeInput.DISCONNECT)
    dead.life.reason = LifeEffect.GO_RELEASED
    return dead


def gone_reason(stub: Stub) -> Any:
    """Why the stub went (a ``LifeEffect``), None while it is connected."""
    return stub.life.reason
