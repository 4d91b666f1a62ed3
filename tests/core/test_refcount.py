"""The one reference-count implementation (R25)."""

from __future__ import annotations

from comsim._core.refcount import RefCount


def test_addref_release_give_the_new_count() -> None:  # R25
    r = RefCount()
    assert (r.add(), r.add(), r.release(), r.release(), r.release()) == (2, 3, 2, 1, 0)


def test_release_never_goes_below_zero() -> None:  # R25
    r = RefCount()
    assert r.release() == 0
    assert r.release() == 0
    assert r.count == 0


def test_a_count_that_revives_comes_back_from_zero() -> None:  # R25 (objects, proxies, events)
    r = RefCount()
    r.release()
    assert r.add() == 1


def test_a_released_call_object_count_stays_released() -> None:  # R25 (call objects)
    r = RefCount(revives=False)
    assert r.release() == 0
    assert r.add() == 0
    assert r.count == 0
