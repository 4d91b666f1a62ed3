"""Marshal data and GIT entries (comsim._core.marshaldata): R6, R7, R10.

Synchronous unit tests of the sans-IO table; no event loop.
"""

from __future__ import annotations

import itertools

import pytest

from comsim._core import hresult as hr
from comsim._core.constants import MSHLFLAGS
from comsim._core.marshaldata import TABLE, DataInput, DataState, GitEntry, Hold, MarshalData

N, S, W = MSHLFLAGS.NORMAL, MSHLFLAGS.TABLESTRONG, MSHLFLAGS.TABLEWEAK
L, C, R = DataState.LIVE, DataState.CONSUMED, DataState.RELEASED
U, X = DataInput.UNMARSHAL, DataInput.RELEASE
K, M, T, D, DEAD = Hold.KEEP, Hold.MOVE, Hold.TAKE, Hold.DROP, Hold.DEAD

# What R6 and R7 say, row by row: (flags, state, input) -> (next state, HRESULT, what becomes
# of the data's reference on the stub)
EXPECTED = {
    # R6: a normal marshal is unmarshalled once; R7: its reference moves to the proxy manager
    (N, L, U): (C, hr.S_OK, M),
    (N, C, U): (C, hr.CO_E_OBJNOTCONNECTED, K),
    (N, L, X): (R, hr.S_OK, D),  # releasing without unmarshalling frees it
    (N, R, U): (R, hr.S_OK, DEAD),  # R7: released normal data -> a disconnected proxy
    (N, C, X): (C, hr.S_OK, K),  # R7: releasing consumed normal data does nothing
    (N, R, X): (R, hr.S_OK, K),  # R7: releasing twice does nothing
    # R7: table-strong
    (S, L, U): (L, hr.S_OK, T),
    (S, L, X): (R, hr.S_OK, D),
    (S, R, U): (R, hr.CO_E_OBJNOTCONNECTED, K),
    (S, R, X): (R, hr.S_OK, K),
    # R7: table-weak
    (W, L, U): (L, hr.S_OK, T),
    (W, L, X): (R, hr.S_OK, D),
    (W, R, U): (R, hr.CO_E_OBJNOTREG, K),
    (W, R, X): (R, hr.S_OK, K),
}


@pytest.mark.parametrize("key", list(EXPECTED), ids=lambda k: "-".join(x.name for x in k))
def test_table_row(key: tuple[MSHLFLAGS, DataState, DataInput]) -> None:  # R6 R7
    assert TABLE[key] == EXPECTED[key]


def _reachable(flags: MSHLFLAGS) -> set[DataState]:
    seen, todo = {L}, [L]
    while todo:
        st = todo.pop()
        for inp in DataInput:
            nxt, _code, _hold = TABLE[(flags, st, inp)]
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("flags", list(MSHLFLAGS))
def test_table_total_over_reachable_states(flags: MSHLFLAGS) -> None:  # R6 R7
    # every state a piece of data can reach has a row for every input (no KeyError at run time)
    for st in _reachable(flags):
        for inp in DataInput:
            assert (flags, st, inp) in TABLE


def test_only_live_data_holds_a_reference() -> None:  # R7
    # a reference is dropped (or moved) only by the step that leaves LIVE, so never twice
    for (_flags, st, _inp), (nxt, _code, hold) in TABLE.items():
        if hold in (M, D):
            assert st is L and nxt is not L
        elif st is not L:
            assert hold in (K, DEAD)


def test_table_strong_and_weak_data_is_never_consumed() -> None:  # R7
    assert _reachable(S) == {L, R}
    assert _reachable(W) == {L, R}
    assert _reachable(N) == {L, C, R}


def test_table_has_no_rows_beyond_the_rules() -> None:  # R6 R7
    assert set(TABLE) == set(EXPECTED)


@pytest.mark.parametrize("flags", list(MSHLFLAGS))
def test_new_data_is_live(flags: MSHLFLAGS) -> None:  # R6 R7
    assert MarshalData(flags).state is L


def test_flags_accept_plain_ints() -> None:  # R6 R7
    assert MarshalData(1).flags is S  # type: ignore[arg-type]


def test_normal_unmarshal_once() -> None:  # R6
    d = MarshalData(N)
    assert d.step(U) == hr.S_OK
    assert d.step(U) == hr.CO_E_OBJNOTCONNECTED
    assert d.step(U) == hr.CO_E_OBJNOTCONNECTED
    assert d.step(X) == hr.S_OK  # releasing consumed data does nothing (R7)
    assert d.state is C


def test_normal_released_before_unmarshal() -> None:  # R6 R7
    d = MarshalData(N)
    assert d.advance(X) == (hr.S_OK, D)
    assert d.state is R
    # R7: released normal data unmarshals to a disconnected proxy, again and again
    assert d.advance(U) == (hr.S_OK, DEAD)
    assert d.advance(U) == (hr.S_OK, DEAD)
    assert d.advance(X) == (hr.S_OK, K)


@pytest.mark.parametrize(
    ("flags", "after_release"), [(S, hr.CO_E_OBJNOTCONNECTED), (W, hr.CO_E_OBJNOTREG)]
)
def test_table_data_many_times_until_released(flags: MSHLFLAGS, after_release: int) -> None:
    # R7
    d = MarshalData(flags)
    for _ in range(5):
        assert d.step(U) == hr.S_OK
    assert d.state is L
    assert d.step(X) == hr.S_OK
    assert d.step(U) == after_release
    assert d.step(X) == hr.S_OK  # twice: nothing
    assert d.step(U) == after_release


@pytest.mark.parametrize("flags", list(MSHLFLAGS))
@pytest.mark.parametrize("seq", list(itertools.product([U, X], repeat=4)))
def test_any_sequence_matches_rules(flags: MSHLFLAGS, seq: tuple[DataInput, ...]) -> None:
    # R6 R7: walk every 4-step sequence and check each answer against the rules as stated
    d = MarshalData(flags)
    unmarshalled = released = False
    for inp in seq:
        code = d.step(inp)
        if inp is X:
            assert code == hr.S_OK
            released = released or not (flags is N and unmarshalled)
        elif released:
            # R7: released normal data gives a disconnected proxy (S_OK here)
            assert code == {N: hr.S_OK, S: hr.CO_E_OBJNOTCONNECTED, W: hr.CO_E_OBJNOTREG}[flags]
        elif flags is N and unmarshalled:
            assert code == hr.CO_E_OBJNOTCONNECTED
        else:
            assert code == hr.S_OK
            unmarshalled = True


# --- GIT entries (R10) -----------------------------------------------------------------------


def test_git_get_many_times() -> None:  # R10
    e = GitEntry()
    for _ in range(3):
        assert e.get() == hr.S_OK


def test_git_get_after_revoke_is_invalidarg() -> None:  # R10
    e = GitEntry()
    assert e.revoke() == hr.S_OK
    assert e.get() == hr.E_INVALIDARG
    assert e.get() == hr.E_INVALIDARG


def test_git_revoke_after_revoke_is_invalidarg() -> None:  # R10
    e = GitEntry()
    assert e.revoke() == hr.S_OK
    assert e.revoke() == hr.E_INVALIDARG
    assert e.get() == hr.E_INVALIDARG


def test_git_entries_are_independent() -> None:  # R10
    a, b = GitEntry(), GitEntry()
    a.revoke()
    assert b.get() == hr.S_OK
    assert b.revoke() == hr.S_OK
