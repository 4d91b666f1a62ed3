"""The server side of one call (comsim._core.stub): R17, R28, R29.

Synchronous unit tests of the sans-IO table; no event loop.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comsim._core import hresult as hr
from comsim._core.stub import (
    TABLE,
    CancelReport,
    Connection,
    Effect,
    Input,
    Stage,
    StubCall,
    after_disconnect,
    request_status,
)

G, I, X = Stage, Input, Effect  # noqa: E741


def test_new_request_is_waiting() -> None:  # R28
    assert StubCall().stage is G.WAITING


class _Recording(StubCall):
    __slots__ = ("writes",)

    def __init__(self) -> None:
        object.__setattr__(self, "writes", [])
        super().__init__()

    def __setattr__(self, name: str, value: object) -> None:
        self.writes.append(value)
        object.__setattr__(self, name, value)


@pytest.mark.parametrize("stage", [G.RUNNING, G.RETURNED])
def test_a_cancel_past_dispatch_writes_nothing(stage: Stage) -> None:  # R28 R29
    """The server's RETURN takes no lock: a CANCEL racing it must not write the stage back."""
    c = _Recording()
    c.stage = stage
    c.writes.clear()
    assert c.step(I.CANCEL) is X.SEND_CANCEL
    assert c.stage is stage
    assert c.writes == []


class _RacedByReturn(StubCall):
    """Its stage reads RUNNING once; any later read sees the RETURN that the server's thread
    took meanwhile (what a thread switch between two reads would show)."""

    __slots__ = ("reads", "written")

    def __init__(self) -> None:
        self.reads = 0
        self.written: list[Stage] = []

    @property  # type: ignore[override]
    def stage(self) -> Stage:
        self.reads += 1
        return G.RUNNING if self.reads == 1 else G.RETURNED

    @stage.setter
    def stage(self, value: Stage) -> None:
        self.written.append(value)


def test_a_cancel_reads_the_stage_once_and_cannot_undo_a_return() -> None:  # R28 R29 R30
    c = _RacedByReturn()
    assert c.step(I.CANCEL) is X.SEND_CANCEL
    assert c.written == []  # RUNNING is not written back over the server's RETURNED
    assert c.reads == 1


def test_only_cancel_changes_a_waiting_stage_from_another_thread() -> None:  # R28
    """Of the inputs from another thread (CANCEL only), none changes a stage but WAITING."""
    for (stage, inp), (_effect, nxt) in TABLE.items():
        if inp is I.CANCEL and stage is not G.WAITING:
            assert nxt is stage, (stage, inp)


def test_plain_call_runs_and_replies() -> None:  # R28 R29
    c = StubCall()
    assert c.step(I.DISPATCH) is X.RUN
    assert c.stage is G.RUNNING
    assert c.step(I.RETURN) is X.REPLY
    assert c.stage is G.RETURNED


def test_cancel_while_waiting_drops_request_and_dispatch_skips() -> None:  # R28 R29
    c = StubCall()
    assert c.step(I.CANCEL) is X.DROPPED_QUEUED
    assert c.stage is G.DROPPED
    assert c.step(I.DISPATCH) is X.SKIP  # never dispatched
    assert c.stage is G.DROPPED


def test_cancel_after_a_rejection_still_drops() -> None:  # R16 R28 R29: rejected, not retried
    c = StubCall()
    assert c.step(I.REJECT) is X.NOTHING
    assert c.stage is G.WAITING
    assert c.step(I.CANCEL) is X.DROPPED_QUEUED
    assert c.step(I.REJECT) is X.NOTHING  # a retry that was in flight changes nothing
    assert c.step(I.DISPATCH) is X.SKIP


def test_dropped_request_ignores_the_cancel_message() -> None:  # R29 (stage stays queued)
    c = StubCall()
    c.step(I.CANCEL)
    assert c.step(I.CANCEL_ARRIVES) is X.NOTHING
    assert c.step(I.CANCEL) is X.NOTHING
    assert c.stage is G.DROPPED


def test_cancel_after_dispatch_sends_cancel() -> None:  # R28 R30
    c = StubCall()
    c.step(I.DISPATCH)
    assert c.step(I.CANCEL) is X.SEND_CANCEL
    assert c.stage is G.RUNNING
    assert c.step(I.CANCEL_ARRIVES) is X.TELL_RUNNING  # stage `running`
    assert c.stage is G.RUNNING


def test_cancel_after_return_sends_cancel_and_is_too_late() -> None:  # R28 R29 (finished)
    c = StubCall()
    c.step(I.DISPATCH)
    c.step(I.RETURN)
    assert c.step(I.CANCEL) is X.SEND_CANCEL
    assert c.step(I.CANCEL_ARRIVES) is X.TOO_LATE
    assert c.stage is G.RETURNED


def test_cancel_sent_while_running_arrives_after_return() -> None:  # R29 (finished)
    c = StubCall()
    c.step(I.DISPATCH)
    assert c.step(I.CANCEL) is X.SEND_CANCEL
    c.step(I.RETURN)
    assert c.step(I.CANCEL_ARRIVES) is X.TOO_LATE


def test_cancel_message_before_dispatch_does_not_drop() -> None:  # R28 R29
    # the drop is decided by CANCEL (at the client, atomically with dispatch), not by the
    # message's arrival
    c = StubCall()
    assert c.step(I.CANCEL_ARRIVES) is X.NOTHING
    assert c.stage is G.WAITING


def test_only_running_calls_return() -> None:  # R29
    assert [s for (s, i) in TABLE if i is I.RETURN] == [G.RUNNING]


def _reachable() -> set[Stage]:
    seen, todo = {G.WAITING}, [G.WAITING]
    while todo:
        s = todo.pop()
        for (s0, _i), (_e, s1) in TABLE.items():
            if s0 is s and s1 not in seen:
                seen.add(s1)
                todo.append(s1)
    return seen


def test_dropped_never_reaches_dispatch() -> None:  # R29: cancelled while queued -> never run
    for (s, _i), (effect, nxt) in TABLE.items():
        if s is G.DROPPED:
            assert nxt is G.DROPPED
            assert effect is not X.RUN
    assert all(s in _reachable() for s in Stage)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(Input)), max_size=20))
def test_random_orders_of_cancel_and_dispatch(inputs: list[Input]) -> None:  # R28 R29
    """Whatever order the runtime feeds the inputs in (skipping impossible pairs), a request
    runs at most once, and never after a cancel found it waiting."""
    c = StubCall()
    runs = 0
    dropped = False
    for inp in inputs:
        if (c.stage, inp) not in TABLE:
            continue
        effect = c.step(inp)
        if effect is X.RUN:
            runs += 1
            assert not dropped
        if effect is X.DROPPED_QUEUED:
            assert runs == 0
            dropped = True
        if dropped:
            assert c.stage is G.DROPPED
    assert runs <= 1


# --- CancelReport: R29's trace event ---------------------------------------------------------


def test_report_stage_then_client_end() -> None:  # R29
    r = CancelReport()
    assert r.note_stage("running") is None  # the client has not ended the call yet
    assert r.note_client_ended() == "running"


def test_report_client_end_then_stage() -> None:  # R29
    r = CancelReport()
    assert r.note_client_ended() is None  # the stage is not known yet
    assert r.note_stage("finished") == "finished"


def test_report_queued_when_both_known_at_once() -> None:  # R29
    r = CancelReport()
    assert r.note_stage("queued") is None
    assert r.note_client_ended() == "queued"
    assert r.note_client_ended() is None
    assert r.note_stage("queued") is None


def test_report_first_stage_wins() -> None:  # R29
    r = CancelReport()
    r.note_stage("running")
    r.note_stage("finished")
    assert r.note_client_ended() == "running"


@pytest.mark.parametrize(
    "calls",
    sorted(
        set(
            itertools.permutations(
                ["client", "client", "stage:running", "stage:finished", "stage:running"]
            )
        )
    ),
)
def test_report_emits_exactly_once(calls: tuple[str, ...]) -> None:  # R29
    r = CancelReport()
    emitted = []
    client_ended = stage_known = False
    for c in calls:
        if c == "client":
            out = r.note_client_ended()
            client_ended = True
        else:
            out = r.note_stage(c.split(":")[1])
            stage_known = True
        if out is not None:
            # only once both halves are known
            assert client_ended and stage_known
            emitted.append(out)
    assert len(emitted) == 1
    first_stage = next(c for c in calls if c.startswith("stage:")).split(":")[1]
    assert emitted == [first_stage]


def test_report_never_emits_without_client_end() -> None:  # R29
    r = CancelReport()
    for stage in ("queued", "running", "finished"):
        assert r.note_stage(stage) is None


def test_report_never_emits_without_stage() -> None:  # R29
    r = CancelReport()
    assert r.note_client_ended() is None
    assert r.note_client_ended() is None


# --- Connection (R17) ------------------------------------------------------------------------


def test_connected_stub_lets_requests_run() -> None:  # R17
    assert request_status(Connection.CONNECTED) is None


def test_disconnecting_stub_refuses_with_objnotconnected() -> None:  # R17
    assert request_status(Connection.DISCONNECTING) == hr.CO_E_OBJNOTCONNECTED


def test_disconnected_stub_refuses_with_disconnected() -> None:  # R17
    assert request_status(Connection.DISCONNECTED) == hr.RPC_E_DISCONNECTED


@pytest.mark.parametrize("running", [1, 2, 7])
def test_disconnect_with_running_calls_is_disconnecting(running: int) -> None:  # R17
    assert after_disconnect(running) is Connection.DISCONNECTING


def test_disconnect_with_no_running_call_is_disconnected() -> None:  # R17
    assert after_disconnect(0) is Connection.DISCONNECTED
