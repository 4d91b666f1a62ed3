"""The decisions that take both sides of a call (``_core.decide``): Cancel against the request's
stage (R28, R29), replies that reject (R16), and what cancelling a waiting task means (R32)."""

from __future__ import annotations

import itertools

import pytest

from comsim._core import decide
from comsim._core import hresult as hr
from comsim._core.callobj import CallMachine, Effect, Input, State
from comsim._core.decide import Reaction, ReplyKind, Waiter
from comsim._core.stub import Stage, StubCall


def _machine(state: State) -> CallMachine:
    return CallMachine(state)


def _request(stage: Stage) -> StubCall:
    r = StubCall()
    r.stage = stage
    return r


def test_cancel_before_dispatch_drops_the_request() -> None:  # R28 R29 (queued)
    m, req = _machine(State.PENDING), _request(Stage.WAITING)
    effect, state, _code = decide.cancel(m, req)
    assert (effect, state, req.stage) == (Effect.COMPLETE_CANCELLED, State.CANCELLED,
                                          Stage.DROPPED)


@pytest.mark.parametrize("stage", [Stage.RUNNING, Stage.RETURNED])
def test_cancel_past_dispatch_tells_the_server(stage: Stage) -> None:  # R28 R29 R30
    m, req = _machine(State.PENDING), _request(stage)
    effect, state, _code = decide.cancel(m, req)
    assert (effect, state, req.stage) == (Effect.TELL_SERVER, State.CANCELLING, stage)


@pytest.mark.parametrize("state", [s for s in State if s is not State.PENDING])
def test_cancel_of_a_call_not_pending_leaves_the_request_alone(state: State) -> None:  # R28
    req = _request(Stage.WAITING)
    effect, _state, _code = decide.cancel(_machine(state), req)
    assert req.stage is Stage.WAITING
    assert effect is CallMachine(state).step(Input.CANCEL)[0]


def test_a_rejection_of_a_pending_call_is_a_retry() -> None:  # R16
    assert decide.reply_kind(_machine(State.PENDING), True) is ReplyKind.RETRY
    assert decide.reply_kind(_machine(State.PENDING), False) is ReplyKind.STEP
    assert decide.reply_kind(_machine(State.CANCELLING), True) is ReplyKind.STEP


def test_reply_input() -> None:  # R28 R16
    assert decide.reply_input(hr.S_OK, False) is Input.REPLY
    assert decide.reply_input(hr.E_FAIL, False) is Input.REPLY
    assert decide.reply_input(hr.RPC_E_CALL_CANCELED, False) is Input.REPLY_CANCELED
    assert decide.reply_input(hr.RPC_E_CALL_REJECTED, True) is Input.REPLY_CANCELED


def test_waiter_table_is_total() -> None:  # R32
    for key in itertools.product(Waiter, (True, False), (True, False)):
        assert key in decide.WAITER_CANCELLED


def test_cancelled_sync_call() -> None:  # R32 R31 R18
    w = Waiter.SYNC_CALL
    assert decide.waiter_cancelled(w, cancellable=True) is Reaction.CANCEL
    assert decide.waiter_cancelled(w, cancellable=False) is Reaction.ABANDON
    assert decide.waiter_cancelled(w, cancellable=True, closing=True) is Reaction.ABANDON
    assert decide.waiter_cancelled(w, ended=True, cancellable=True) is Reaction.NOTHING


def test_cancelled_finish() -> None:  # R32 R18
    w = Waiter.FINISH
    for cancellable in (True, False):
        assert decide.waiter_cancelled(w, cancellable=cancellable) is Reaction.CANCEL_THEN_FINISH
        # the caller's apartment shuts down: its outgoing calls are abandoned, no cancel sent
        assert decide.waiter_cancelled(w, cancellable=cancellable,
                                       closing=True) is Reaction.END_WAIT


@pytest.mark.parametrize(("waiter", "reaction"), [
    (Waiter.WAIT, Reaction.END_WAIT),
    (Waiter.CANCEL_GRACE, Reaction.END_GRACE),
    (Waiter.RUN, Reaction.CANCEL_UNIT),
])
def test_cancelled_other_waits(waiter: Waiter, reaction: Reaction) -> None:  # R32
    for cancellable, closing in itertools.product((True, False), (True, False)):
        assert decide.waiter_cancelled(waiter, cancellable=cancellable,
                                       closing=closing) is reaction
