"""The client-side call object machine (comsim._core.callobj): R21, R22, R23, R25, R28.

Synchronous unit tests of the sans-IO table; no event loop.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comsim._core import hresult as hr
from comsim._core.callobj import (
    ENDED,
    IN_FLIGHT,
    TABLE,
    CallMachine,
    Effect,
    Input,
    State,
    keeps_manager,
)

E, S, In = Effect, State, Input
NON_IDLE_LIVE = (S.PENDING, S.CANCELLING, S.COMPLETED, S.CANCELLED)


def machine_in(state: State) -> CallMachine:
    return CallMachine(state)


# --- the table is total ----------------------------------------------------------------------


def test_table_is_total() -> None:  # R21 R22 R23 R25 R28
    missing = [(s, i) for s, i in itertools.product(State, Input) if (s, i) not in TABLE]
    assert missing == []
    assert len(TABLE) == len(State) * len(Input)


def test_every_transition_is_well_formed() -> None:  # R21 R22 R28
    for (s, i), (effect, nxt, code) in TABLE.items():
        assert isinstance(effect, Effect) and isinstance(nxt, State), (s, i)
        if effect in (E.REFUSE, E.STATUS):
            assert isinstance(code, int), (s, i)
        if effect is E.REFUSE:
            # a refusal raises: it is a failure code and changes nothing
            assert hr.failed(code), (s, i)
            assert nxt is s, (s, i)
        if effect is E.STATUS:
            assert nxt is s, (s, i)


def test_new_machine_is_idle_and_not_ended() -> None:  # R21 R23 (event clear before Begin_)
    m = CallMachine()
    assert m.state is S.IDLE
    assert not m.ended


def test_ended_states() -> None:  # R23: the event is signalled once the call has ended
    assert ENDED == {S.COMPLETED, S.CANCELLED}
    for s in State:
        assert machine_in(s).ended == (s in ENDED)


# --- BEGIN (R21) -----------------------------------------------------------------------------


def test_begin_from_idle_sends() -> None:  # R21
    m = CallMachine()
    assert m.step(In.BEGIN) == (E.SEND, S.PENDING, None)
    assert m.state is S.PENDING


@pytest.mark.parametrize("state", NON_IDLE_LIVE)
def test_begin_while_call_in_progress_is_call_pending(state: State) -> None:  # R21
    m = machine_in(state)
    effect, nxt, code = m.step(In.BEGIN)
    assert effect is E.REFUSE
    assert code == hr.RPC_E_CALL_PENDING
    assert nxt is state and m.state is state


def test_call_pending_value_is_rpc_s_callpending() -> None:  # R21 (choice)
    assert hr.RPC_E_CALL_PENDING == hr.RPC_S_CALLPENDING == 0x80010115 - 0x1_0000_0000


def test_begin_refused_until_finish_whatever_happened() -> None:  # R21 R22
    # Begin_ -> cancel -> reply dropped -> Begin_ still refused -> Finish_ -> Begin_ works
    m = CallMachine()
    m.step(In.BEGIN)
    for inp in (In.CANCEL, In.GRACE_EXPIRED, In.REPLY, In.REPLY_CANCELED):
        m.step(inp)
        assert m.step(In.BEGIN)[2] == hr.RPC_E_CALL_PENDING
    assert m.step(In.FINISH)[0] is E.RAISE_CANCELLED
    assert m.step(In.BEGIN)[0] is E.SEND


# --- replies (R22, R28) -------------------------------------------------------------------


def test_reply_while_pending_completes() -> None:  # R22 R23
    m = CallMachine(S.PENDING)
    assert m.step(In.REPLY) == (E.COMPLETE, S.COMPLETED, None)
    assert m.ended


def test_reply_canceled_without_cancel_is_an_ordinary_failed_reply() -> None:  # R22 R28
    m = CallMachine(S.PENDING)
    assert m.step(In.REPLY_CANCELED)[:2] == (E.COMPLETE, S.COMPLETED)
    # Finish_ then gives the kept reply (which carries the failure), not RAISE_CANCELLED
    assert m.step(In.FINISH)[:2] == (E.DELIVER, S.IDLE)


def test_reply_during_grace_completes_the_call() -> None:  # R28
    m = CallMachine(S.CANCELLING)
    assert m.step(In.REPLY) == (E.COMPLETE, S.COMPLETED, None)
    # a later grace expiry changes nothing; Cancel's answer is RPC_E_CALL_COMPLETE
    effect, nxt, code = m.step(In.GRACE_EXPIRED)
    assert nxt is S.COMPLETED
    assert effect is E.STATUS and code == hr.RPC_E_CALL_COMPLETE


def test_canceled_reply_during_grace_ends_cancelled() -> None:  # R28
    m = CallMachine(S.CANCELLING)
    effect, nxt, _ = m.step(In.REPLY_CANCELED)
    assert (effect, nxt) == (E.COMPLETE_CANCELLED, S.CANCELLED)
    assert m.ended


@pytest.mark.parametrize("state", [S.IDLE, S.COMPLETED, S.CANCELLED, S.RELEASED])
@pytest.mark.parametrize("inp", [In.REPLY, In.REPLY_CANCELED])
def test_reply_nobody_waits_for_is_dropped(state: State, inp: Input) -> None:  # R25 R28
    m = machine_in(state)
    effect, nxt, _ = m.step(inp)
    assert effect is E.DROP
    assert nxt is state


# --- Cancel (R28) ----------------------------------------------------------------------------


@pytest.mark.parametrize("inp", [In.CANCEL, In.CANCEL_QUEUED])
@pytest.mark.parametrize("state", [S.IDLE, S.COMPLETED, S.RELEASED])
def test_cancel_with_no_call_or_after_reply_is_call_complete(
    state: State, inp: Input
) -> None:  # R28
    m = machine_in(state)
    assert m.step(inp) == (E.STATUS, state, hr.RPC_E_CALL_COMPLETE)


@pytest.mark.parametrize("inp", [In.CANCEL, In.CANCEL_QUEUED])
@pytest.mark.parametrize("state", [S.CANCELLING, S.CANCELLED])
def test_cancel_of_cancelled_call_is_call_canceled(state: State, inp: Input) -> None:  # R28
    m = machine_in(state)
    assert m.step(inp) == (E.STATUS, state, hr.RPC_E_CALL_CANCELED)


def test_cancel_of_queued_call_is_s_ok_at_once() -> None:  # R28 R29 (stage queued)
    m = CallMachine(S.PENDING)
    assert m.step(In.CANCEL_QUEUED) == (E.COMPLETE_CANCELLED, S.CANCELLED, hr.S_OK)
    assert m.ended
    assert m.step(In.FINISH) == (E.RAISE_CANCELLED, S.IDLE, hr.RPC_E_CALL_CANCELED)


def test_cancel_of_running_call_tells_server_then_grace() -> None:  # R28 R30
    m = CallMachine(S.PENDING)
    assert m.step(In.CANCEL) == (E.TELL_SERVER, S.CANCELLING, None)
    assert not m.ended  # Cancel waits (grace period)
    assert m.step(In.GRACE_EXPIRED) == (E.COMPLETE_CANCELLED, S.CANCELLED, hr.S_OK)
    assert m.ended
    # the late reply is dropped
    assert m.step(In.REPLY)[0] is E.DROP
    assert m.step(In.FINISH) == (E.RAISE_CANCELLED, S.IDLE, hr.RPC_E_CALL_CANCELED)


# --- TestCancel (R28) ------------------------------------------------------------------------

TEST_CANCEL_CODES = {
    S.IDLE: hr.RPC_E_CALL_COMPLETE,
    S.PENDING: hr.RPC_S_CALLPENDING,
    S.CANCELLING: hr.RPC_E_CALL_CANCELED,
    S.COMPLETED: hr.RPC_E_CALL_COMPLETE,
    S.CANCELLED: hr.RPC_E_CALL_CANCELED,
    S.RELEASED: hr.RPC_E_CALL_COMPLETE,
}


@pytest.mark.parametrize("state", list(State))
def test_test_cancel_codes(state: State) -> None:  # R28
    m = machine_in(state)
    assert m.step(In.TEST_CANCEL) == (E.STATUS, state, TEST_CANCEL_CODES[state])


# --- Finish_ (R22) ---------------------------------------------------------------------------


def test_finish_with_no_call_is_call_complete() -> None:  # R22
    m = CallMachine()
    assert m.step(In.FINISH) == (E.REFUSE, S.IDLE, hr.RPC_E_CALL_COMPLETE)


def test_finish_twice_is_call_complete() -> None:  # R22
    m = CallMachine()
    m.step(In.BEGIN)
    m.step(In.REPLY)
    assert m.step(In.FINISH)[:2] == (E.DELIVER, S.IDLE)
    assert m.step(In.FINISH) == (E.REFUSE, S.IDLE, hr.RPC_E_CALL_COMPLETE)


@pytest.mark.parametrize("state", [S.PENDING, S.CANCELLING])
def test_finish_waits_while_call_runs(state: State) -> None:  # R22
    m = machine_in(state)
    assert m.step(In.FINISH) == (E.WAIT, state, None)


def test_finish_after_release_refuses() -> None:  # R25
    m = CallMachine(S.RELEASED)
    effect, nxt, code = m.step(In.FINISH)
    assert effect is E.REFUSE and nxt is S.RELEASED and hr.failed(code)


# --- the last Release (R25) ------------------------------------------------------------------


@pytest.mark.parametrize("state", [s for s in State if s is not S.RELEASED])
def test_release_forgets_and_never_cancels(state: State) -> None:  # R25
    m = machine_in(state)
    effect, nxt, _ = m.step(In.RELEASE)
    # not TELL_SERVER: releasing does not cancel
    assert effect is (E.FORGET_IN_FLIGHT if state in IN_FLIGHT else E.FORGET)
    assert nxt is S.RELEASED
    assert m.step(In.RELEASE)[:2] == (E.NOTHING, S.RELEASED)


@pytest.mark.parametrize("state", sorted(IN_FLIGHT, key=lambda s: s.value))
def test_release_in_flight_ends_the_waits(state: State) -> None:  # R25 R28
    # the call runs on (the manager is kept, R25); a Cancel in its grace period gives what
    # Cancel gives once released; a waiting Finish_ steps again and is refused (never hangs)
    m = machine_in(state)
    effect, _, code = m.step(In.RELEASE)
    assert effect is E.FORGET_IN_FLIGHT and keeps_manager(state)
    assert code == CallMachine(S.RELEASED).step(In.CANCEL)[2] == hr.RPC_E_CALL_COMPLETE
    finish = m.step(In.FINISH)
    assert finish[0] is E.REFUSE and hr.failed(finish[2])


def test_keeps_manager_exactly_when_release_is_in_flight() -> None:  # R25
    for s in State:
        assert keeps_manager(s) == (TABLE[(s, In.RELEASE)][0] is E.FORGET_IN_FLIGHT), s


def test_released_pending_call_drops_its_reply() -> None:  # R25
    m = CallMachine()
    m.step(In.BEGIN)
    m.step(In.RELEASE)
    assert m.step(In.REPLY) == (E.DROP, S.RELEASED, None)
    assert not m.ended


# --- random walks ----------------------------------------------------------------------------


@dataclass
class Model:
    """An independent reading of R21/R22/R25/R28, kept as plain facts."""

    released: bool = False
    begun: bool = False  # a Begin_ succeeded and Finish_ has not yet returned
    outcome: str | None = None  # None, "reply" or "cancelled"
    cancelling: bool = False  # Cancel told the server and is in its grace period

    def expected_state(self) -> State:
        if self.released:
            return S.RELEASED
        if not self.begun:
            return S.IDLE
        if self.outcome == "reply":
            return S.COMPLETED
        if self.outcome == "cancelled":
            return S.CANCELLED
        return S.CANCELLING if self.cancelling else S.PENDING


def check_step(model: Model, m: CallMachine, inp: Input) -> None:
    before = m.state
    effect, nxt, code = m.step(inp)
    assert m.state is nxt
    live = not model.released
    in_call = live and model.begun

    if inp is In.BEGIN:
        if not live:
            assert effect is E.REFUSE and hr.failed(code)
        elif model.begun:  # R21: RPC_E_CALL_PENDING from Begin_ until Finish_ returns
            assert (effect, code) == (E.REFUSE, hr.RPC_E_CALL_PENDING)
        else:  # R21: only an idle call object begins
            assert effect is E.SEND and before is S.IDLE
            model.begun, model.outcome, model.cancelling = True, None, False
    elif inp in (In.REPLY, In.REPLY_CANCELED):
        if not in_call or model.outcome is not None:  # R25 R28: nobody reads it
            assert effect is E.DROP
        elif inp is In.REPLY_CANCELED and model.cancelling:
            assert effect is E.COMPLETE_CANCELLED
            model.outcome = "cancelled"
        else:
            assert effect is E.COMPLETE
            model.outcome = "reply"
        model.cancelling = model.cancelling and model.outcome is None
    elif inp in (In.CANCEL, In.CANCEL_QUEUED):  # R28
        if not in_call or model.outcome == "reply":
            assert (effect, code) == (E.STATUS, hr.RPC_E_CALL_COMPLETE)
        elif model.outcome == "cancelled" or model.cancelling:
            assert (effect, code) == (E.STATUS, hr.RPC_E_CALL_CANCELED)
        elif inp is In.CANCEL_QUEUED:
            assert (effect, code) == (E.COMPLETE_CANCELLED, hr.S_OK)
            model.outcome = "cancelled"
        else:
            assert effect is E.TELL_SERVER
            model.cancelling = True
    elif inp is In.GRACE_EXPIRED:
        if in_call and model.cancelling and model.outcome is None:
            assert (effect, code) == (E.COMPLETE_CANCELLED, hr.S_OK)
            model.outcome, model.cancelling = "cancelled", False
        else:
            assert effect in (E.NOTHING, E.STATUS)
            assert effect is not E.STATUS or code != hr.S_OK
    elif inp is In.TEST_CANCEL:  # R28
        assert effect is E.STATUS
        if not in_call or model.outcome == "reply":
            assert code == hr.RPC_E_CALL_COMPLETE
        elif model.outcome == "cancelled" or model.cancelling:
            assert code == hr.RPC_E_CALL_CANCELED
        else:
            assert code == hr.RPC_S_CALLPENDING
    elif inp is In.FINISH:  # R22
        if not live:
            assert effect is E.REFUSE and hr.failed(code)
        elif not model.begun:
            assert (effect, code) == (E.REFUSE, hr.RPC_E_CALL_COMPLETE)
        elif model.outcome == "reply":
            assert effect is E.DELIVER
            model.begun = False
        elif model.outcome == "cancelled":
            assert (effect, code) == (E.RAISE_CANCELLED, hr.RPC_E_CALL_CANCELED)
            model.begun = False
        else:
            assert effect is E.WAIT
    elif inp is In.RELEASE:  # R25: released, never cancelled
        assert effect is (E.NOTHING if model.released else
                          E.FORGET_IN_FLIGHT if in_call and model.outcome is None else E.FORGET)
        model.released = True

    if effect in (E.DELIVER, E.RAISE_CANCELLED):  # R22: after Finish_ it can begin again
        assert m.state is S.IDLE
    if effect is E.TELL_SERVER:
        assert before is S.PENDING
    assert m.state is model.expected_state(), (before, inp, m.state)
    # R23: the event is set exactly while the call has ended and Finish_ has not run
    assert m.ended == (live and not model.released and model.begun and model.outcome is not None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(Input)), max_size=40))
def test_random_walks_follow_the_rules(inputs: list[Input]) -> None:  # R21 R22 R23 R25 R28
    model, m = Model(), CallMachine()
    for inp in inputs:
        check_step(model, m, inp)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([i for i in Input if i is not In.RELEASE]), max_size=40))
def test_random_walks_without_release(inputs: list[Input]) -> None:  # R21 R22 R28
    # without RELEASE the walks stay in the live states longer, exploring more of them
    model, m = Model(), CallMachine()
    for inp in inputs:
        check_step(model, m, inp)
    assert m.state is not S.RELEASED
