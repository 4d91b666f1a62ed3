"""A livelock fails, it does not hang: a virtual-time loop whose clock jumps more than its
``jump_limit`` raises ``comsim.testing.JumpLimitExceeded``, and every run of explore, replay
and shrink has such a limit (``RUN_JUMP_LIMIT``). Before, a scenario that schedules timers for
ever — a COM retry of a rejected call that never ends (R16), a polling loop — hung the
exploration: nothing is deadlocked, so no ``Deadlock`` came either."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import comsim
from comsim.testing import JumpLimitExceeded, Raised, VirtualTimeLoop, _runs, explore

from .scenarios import two_callers


class Limited(VirtualTimeLoop):
    jump_limit = 100


def _run_limited(fn: Any) -> Any:
    return anyio.run(fn, backend="asyncio", backend_options={"loop_factory": Limited})


async def _poll_for_ever(rt: Any = None) -> None:
    while True:
        await anyio.sleep(1)


def test_a_clock_that_jumps_past_its_limit_fails() -> None:
    with pytest.raises(JumpLimitExceeded, match="jumped 100 times"):
        _run_limited(_poll_for_ever)


def test_jumps_within_the_limit_and_long_sleeps_are_fine() -> None:
    async def main() -> float:
        for _ in range(98):
            await anyio.sleep(0.5)
        await anyio.sleep(1e9)  # one jump, however long (API: sleeping any virtual length)
        return anyio.current_time()

    assert _run_limited(main) == pytest.approx(49 + 1e9)


class IPeer(comsim.Interface):
    async def Hello(self, depth: int) -> str: ...


class Peer(comsim.CoClass, IPeer):
    def __init__(self) -> None:
        super().__init__()
        self.other: Any = None

    async def Hello(self, depth: int) -> str:
        if depth == 0:
            return "leaf"
        return str(await self.other.Hello(depth - 1))


class RetryForEver(comsim.IMessageFilter):
    """Rejects every nested call; the caller's side retries each rejection after 100 ms."""

    def HandleInComingCall(self, call_type: int, *args: Any) -> int:
        if call_type == comsim.CALLTYPE_TOPLEVEL:
            return comsim.SERVERCALL_ISHANDLED
        return comsim.SERVERCALL_RETRYLATER

    def RetryRejectedCall(self, *args: Any) -> int:
        return 100

    def MessagePending(self, *args: Any) -> int:
        return comsim.PENDINGMSG_WAITDEFPROCESS


async def retry_for_ever(rt: comsim.Runtime) -> str:
    """A -> B -> A: the nested call into A is rejected and retried for ever (R16): COM's own
    livelock."""
    a, b = await rt.create_sta("A"), await rt.create_sta("B")
    peers: dict[str, Peer] = {}

    async def make(name: str) -> comsim.MarshalStream:
        comsim.CoRegisterMessageFilter(RetryForEver())
        peers[name] = Peer()
        return comsim.marshal_interface(peers[name], IPeer)

    sa, sb = await a.run(make, "A"), await b.run(make, "B")

    async def link(name: str, stream: comsim.MarshalStream) -> None:
        peers[name].other = comsim.unmarshal_interface(stream, IPeer)

    await a.run(link, "A", sb)
    await b.run(link, "B", sa)

    async def go() -> str:
        return await peers["A"].Hello(2)

    return str(await a.run(go))


@pytest.mark.parametrize("scenario", [_poll_for_ever, retry_for_ever])
def test_explore_fails_a_livelock_instead_of_hanging(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Any, scenario: Any) -> None:
    monkeypatch.setattr(_runs, "RUN_JUMP_LIMIT", 2000)
    with pytest.raises(JumpLimitExceeded, match="jumped 2,000 times") as info:
        explore(scenario, range(3), save_dir=tmp_path)
    assert any("saved to" in note for note in info.value.__notes__)
    found = explore(scenario, range(2), keep_going=True)
    (outcome,) = found
    assert isinstance(outcome, Raised) and outcome.type == "JumpLimitExceeded"
    # the loop of the livelocked run is replaced: the next exploration runs as ever
    assert len(explore(two_callers, range(20))) >= 2
