"""Stub lifetimes and proxy-manager identity as sans-IO tables (comsim._core.lifetime,
comsim._core.identity): R7, R34. No event loop."""

from __future__ import annotations

import itertools

import pytest

from comsim._core import hresult as hr
from comsim._core.identity import FAILED, ROUTE, Build, ManagerCount, Where, proxy_key, use_status
from comsim._core.lifetime import (
    TABLE,
    Life,
    LifeEffect,
    LifeInput,
    StubLife,
    released_normal_status,
    unmarshal_status,
)
from comsim._core.marshaldata import Hold

I = LifeInput  # noqa: E741


def test_table_is_total() -> None:  # R7
    for key in itertools.product(Life, LifeInput, (False, True), (False, True), (False, True)):
        assert key in TABLE


def test_a_request_on_its_way_holds_a_released_stub() -> None:  # R7
    # COM's RemRelease reaches the server after the requests already sent: they still run
    s = StubLife()
    s.step(I.ADD_WEAK)
    s.step(I.ADD_STRONG)
    s.requests += 2  # two requests sent
    assert s.step(I.DROP_STRONG) is LifeEffect.NOTHING
    assert s.state is Life.CONNECTED and s.strong == 0
    assert s.answered() is LifeEffect.NOTHING
    assert s.answered() is LifeEffect.GO_RELEASED  # the last answer lets it go, weak or not
    assert s.state is Life.GONE and s.reason is LifeEffect.GO_RELEASED


def test_answers_with_a_strong_reference_left_keep_the_stub() -> None:  # R7
    s = StubLife()
    s.step(I.ADD_STRONG)
    s.requests += 1
    assert s.answered() is LifeEffect.NOTHING
    assert s.state is Life.CONNECTED
    assert s.step(I.DROP_STRONG) is LifeEffect.GO_RELEASED


@pytest.mark.parametrize(("inp", "effect"), [(I.DISCONNECT, LifeEffect.GO_DISCONNECTED),
                                             (I.SHUTDOWN, LifeEffect.GO_SHUTDOWN)])
def test_requests_do_not_hold_a_disconnect_or_a_shutdown(inp: LifeInput,
                                                         effect: LifeEffect) -> None:  # R17 R18
    s = StubLife()
    s.step(I.ADD_STRONG)
    s.requests += 1
    assert s.step(inp) is effect
    assert s.answered() is LifeEffect.NOTHING  # gone is gone
    assert s.requests == 0


def test_strong_release_to_zero_goes_whatever_weak_remain() -> None:  # R7
    s = StubLife()
    s.step(I.ADD_WEAK)
    s.step(I.ADD_STRONG)
    assert s.step(I.DROP_STRONG) is LifeEffect.GO_RELEASED
    assert s.state is Life.GONE and s.weak == 1
    assert s.reason is LifeEffect.GO_RELEASED


def test_last_weak_release_without_strong_goes() -> None:  # R7
    s = StubLife()
    s.step(I.ADD_WEAK)
    s.step(I.ADD_WEAK)
    assert s.step(I.DROP_WEAK) is LifeEffect.NOTHING
    assert s.step(I.DROP_WEAK) is LifeEffect.GO_RELEASED


def test_weak_release_with_strong_left_stays() -> None:  # R7
    s = StubLife()
    s.step(I.ADD_WEAK)
    s.step(I.ADD_STRONG)
    assert s.step(I.DROP_WEAK) is LifeEffect.NOTHING
    assert s.state is Life.CONNECTED
    assert s.step(I.DROP_STRONG) is LifeEffect.GO_RELEASED


@pytest.mark.parametrize(("inp", "effect"), [(I.DISCONNECT, LifeEffect.GO_DISCONNECTED),
                                             (I.SHUTDOWN, LifeEffect.GO_SHUTDOWN)])
def test_disconnect_and_shutdown_go_whatever_the_counts(inp: LifeInput,
                                                        effect: LifeEffect) -> None:  # R7 R17 R18
    s = StubLife()
    s.step(I.ADD_STRONG)
    s.step(I.ADD_WEAK)
    assert s.step(inp) is effect
    assert s.state is Life.GONE


def test_gone_is_gone() -> None:  # R7: late steps do nothing, the reason stays
    s = StubLife()
    s.step(I.ADD_STRONG)
    s.step(I.DROP_STRONG)
    for inp in LifeInput:
        assert s.step(inp) is LifeEffect.NOTHING
    assert s.reason is LifeEffect.GO_RELEASED


def test_unmarshal_status() -> None:  # R7 R9 R17
    assert unmarshal_status(False, True, True, LifeEffect.GO_RELEASED) == hr.CO_E_OBJNOTREG
    assert unmarshal_status(False, True, True, LifeEffect.GO_DISCONNECTED) == \
        hr.CO_E_OBJNOTCONNECTED
    assert unmarshal_status(False, False, True, LifeEffect.GO_SHUTDOWN) == hr.CO_E_OBJNOTCONNECTED
    assert unmarshal_status(True, True, False, None) == hr.E_NOINTERFACE
    assert unmarshal_status(True, True, True, None) == hr.S_OK
    assert released_normal_status(True) == hr.CO_E_OBJNOTCONNECTED
    assert released_normal_status(False) == hr.S_OK


def test_route_table() -> None:  # R34 R7
    assert ROUTE[(Where.NEW, Hold.MOVE)] == (Build.BUILD, 0)
    assert ROUTE[(Where.NEW, Hold.TAKE)] == (Build.BUILD, 1)
    assert ROUTE[(Where.LIVE, Hold.MOVE)] == (Build.JOIN, -1)
    assert ROUTE[(Where.LIVE, Hold.TAKE)] == (Build.JOIN, 0)
    assert ROUTE[(Where.HOME, Hold.MOVE)] == (Build.OBJECT, -1)
    assert ROUTE[(Where.HOME, Hold.TAKE)] == (Build.OBJECT, 0)
    assert FAILED == {Hold.MOVE: -1, Hold.TAKE: 0}
    # the stub's strong count never rises for a route that joins or ends at home
    assert all(d <= 0 for (w, _h), (_b, d) in ROUTE.items() if w is not Where.NEW)


def test_manager_count_dies_once() -> None:  # R34 R25
    m = ManagerCount()
    assert m.add() == 2
    assert m.release() == (1, False)
    assert m.release() == (0, True)
    assert m.live is False
    assert m.add() == 0 and m.release() == (0, False)
    assert m.end() is False


def test_proxy_key_and_use_status() -> None:  # R34 R12
    class U: ...
    class A: ...
    class B: ...
    assert proxy_key(A, (A, B), U) == (A,)
    assert proxy_key(U, (A, B), U) == (A, B)
    home = object()
    assert use_status(None, home, True, False) == hr.CO_E_NOTINITIALIZED
    assert use_status(home, home, True, False) == hr.CO_E_OBJNOTCONNECTED
    assert use_status(object(), home, True, False) == hr.CO_E_OBJNOTCONNECTED
    assert use_status(object(), home, True, True) == hr.RPC_E_WRONG_THREAD
    assert use_status(home, home, True, True) == hr.S_OK
