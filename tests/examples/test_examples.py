"""Every example in examples/ runs, and shows what its docstring promises.

Each example's ``main()`` runs on the threaded runtime (``asyncio.run``, as
``python examples/NAME.py`` does) and returns what it saw; the checks below assert on that.
One test runs every example as a script; one makes sure no example goes untested.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import comsim
from comsim import hresult

from ..helpers import EXAMPLES_DIR, ROOT, load_example


def load(name: str) -> ModuleType:
    """Import examples/<name>.py from its path (examples/ is not a package), registered in
    ``sys.modules`` so that pickling (R11) can find its classes."""
    return load_example(name)


def run_main(name: str) -> Any:
    main = load(name).main
    if inspect.iscoroutinefunction(main):
        return asyncio.run(main())  # the threaded runtime, as `python examples/NAME.py`
    return main()  # an example that drives comsim.testing.run itself


def in_order(lines: list[str], *fragments: str) -> None:
    """Each fragment occurs in some line, each after the previous one."""
    at = -1
    for frag in fragments:
        hits = [i for i, line in enumerate(lines) if frag in line and i > at]
        assert hits, f"{frag!r} not found after line {at} in:\n" + "\n".join(lines)
        at = hits[0]


# --------------------------------------------------------------------------- the checks
def check_hello_sta(out: dict[str, Any]) -> None:
    # R13: the call runs in the server STA, on its thread, and the result comes back
    assert out["result"] == "Hello, world, from server!"
    assert out["server_thread"] != out["client_thread"]
    # R4: the first STA is the main STA
    assert out["client_type"] == "MAINSTA"
    assert out["server_type"] == "STA"
    in_order(out["lines"], "[server] constructing Greeter", "[client] got",
             "[server] Greeter.Greet", "[client] Greet returned 'Hello, world, from server!'")


def check_reentrancy(out: dict[str, Any]) -> None:
    # R2: the callback runs in A, on A's thread, while A's first unit waits for Ping
    assert out["answer"] == "pong"
    assert out["same_thread"] is True
    in_order(out["lines"], "[A] calling B.Ping", "[B] Pinger.Ping runs", "[A] Callback.Notify",
             "[B] the callback returned 1", "[A] Ping returned 'pong'")
    # R2: a non-COM await holds the STA: Quick waits until Slow has ended
    assert out["serialized_order"] == ["Slow starts", "Slow ends", "Quick runs"]
    # R2: a COM wait lets Quick in, nested; it even provides what Slow waits for
    assert out["com_wait_order"] == ["Slow starts", "Quick runs", "Slow ends (its wait gave S_OK)"]


def check_message_filter(out: dict[str, Any]) -> None:
    # R16: RETRYLATER, the caller's filter answers 100, the retry is handled
    assert out["part1"]["value"] == 5
    assert out["part1"]["elapsed_ms"] >= 99  # the retry waited ~100 ms
    answers = [seen["answer"] for seen in out["incoming"]]
    assert answers == [comsim.SERVERCALL_RETRYLATER, comsim.SERVERCALL_ISHANDLED,
                       comsim.SERVERCALL_RETRYLATER]
    assert all(seen["call_type"] == comsim.CALLTYPE_TOPLEVEL for seen in out["incoming"])
    assert all(seen["method"] == "ICalc.Add" for seen in out["incoming"])
    assert out["incoming"][0]["tick_count"] < 100
    assert out["incoming"][1]["tick_count"] >= 99  # ms since the call was first sent
    assert [r["reject_type"] for r in out["retries"]] == [comsim.SERVERCALL_RETRYLATER]
    # R16: a caller with no filter gives up at once
    assert out["part2_hresult"] == hresult.RPC_E_CALL_REJECTED
    # R16: HandleInComingCall is called on the callee STA
    assert all(seen["os_thread"] == "comsim-server" for seen in out["incoming"])
    assert [seen["apartment"] for seen in out["incoming"]] == ["server"] * 3


def check_async_call(out: dict[str, Any]) -> None:
    # R19, R20: Begin_ through a call object from the proxy's ICallFactory
    assert out["begin"] == hresult.S_OK
    # R21: one call at a time per call object
    assert out["second_begin"] == hresult.RPC_E_CALL_PENDING
    # R23: Wait times out with RPC_S_CALLPENDING while the server works, then S_OK
    polls = out["polls"]
    assert len(polls) >= 2 and polls[-1] == hresult.S_OK
    assert all(p == hresult.RPC_S_CALLPENDING for p in polls[:-1])
    assert out["other_work"] == len(polls) - 1
    # R22: Finish_ gives the result; again, RPC_E_CALL_COMPLETE; then the object begins again
    assert out["result"] == "worked 0.15 s"
    assert out["second_finish"] == hresult.RPC_E_CALL_COMPLETE
    assert out["sum"] == 5


def check_cancel_async_call(out: dict[str, Any]) -> None:
    for tag in ("A", "B"):
        part = out[tag]
        # R27, R28: Cancel while running gives S_OK; TestCancel says cancelled until Finish_
        assert part["cancel"] == hresult.S_OK
        assert part["test_cancel"] == hresult.RPC_E_CALL_CANCELED
        # R21: Begin_ fails until Finish_ has cleaned up
        assert part["begin_again"] == hresult.RPC_E_CALL_PENDING
        # R28: Finish_ after the cancel fails with RPC_E_CALL_CANCELED
        assert part["finish"] == hresult.RPC_E_CALL_CANCELED
        # R29: the server was told while running
        assert part["stages"] == ["running"]
    # R30: the interrupted server did not do the work; its late acknowledgement is dropped
    assert out["A"]["balance"] == 0
    assert out["A"]["dropped"] == [hresult.RPC_E_CALL_CANCELED]
    # R29: no guarantee the server stopped: the cooperative server did the work anyway
    assert out["B"]["balance"] == 100
    assert out["B"]["dropped"] == [hresult.S_OK]
    in_order(out["lines"], "[serverA] Deposit interrupted",
             "[clientA] asked the server: balance = 0")
    in_order(out["lines"], "[serverB] Deposit done: balance = 100",
             "[clientB] asked the server: balance = 100")


def check_completion_callback(out: dict[str, Any]) -> None:
    # R24: Signal() once per call (completed, then cancelled), in the client apartment's thread
    assert out["result"] == "bread after 30 minutes"
    assert len(out["signals"]) == 2
    for signal in out["signals"]:
        assert signal["apartment"] == "client"
        assert signal["thread"] == out["client_thread"]
    # R24: the call object's own event is signalled first
    assert out["own_event"] == hresult.S_OK
    in_order(out["lines"], "Notifier.Signal() #1", "the call object's own event", "Finish_Bake()")
    # R28: the cancelled call also ends with Signal(); Finish_ fails with RPC_E_CALL_CANCELED
    assert out["cancel"] == hresult.S_OK
    assert out["finish_after_cancel"] == hresult.RPC_E_CALL_CANCELED


def check_cancel_sync_call(out: dict[str, Any]) -> None:
    # R31: an enabled synchronous call is cancelled from another apartment
    assert out["part1"] == {"call": hresult.RPC_E_CALL_CANCELED, "cancel": hresult.S_OK}
    in_order(out["lines"], "[client] CoEnableCallCancellation() -> S_OK",
             "[server] Worker.Work interrupted by the cancel",
             "[client] Work failed: RPC_E_CALL_CANCELED",
             "[client] CoDisableCallCancellation() -> S_OK")
    # R31: a call made while disabled cannot be cancelled; it runs on
    assert out["part2"] == {"call": "work done", "cancel": hresult.CO_E_CANCEL_DISABLED}
    # R31: no pending call
    assert out["part3"] == {"cancel": hresult.E_NOINTERFACE}


def check_explore_cancel_race(out: dict[str, int]) -> None:
    # R29: under seeded message latencies the cancel meets all three stages, and some calls
    # complete first (R28: Cancel gives RPC_E_CALL_COMPLETE)
    assert {"queued", "running", "finished"} <= set(out)
    assert set(out) <= {"queued", "running", "finished", "completed before the cancel"}
    assert all(isinstance(seed, int) for seed in out.values())


def check_inproc_threading(out: dict[str, Any]) -> None:
    # R33: from the main STA "ui": "Free" and "Neutral" give proxies, the rest the object
    assert out["sta"] == {"Apartment": ("ui", False), "Free": ("MTA", True),
                          "Both": ("ui", False), "Neutral": ("NA", True), "None": ("ui", False)}
    # R33: from the MTA: "Apartment" goes to the host STA, None to the main STA
    assert out["mta"] == {"Apartment": ("HostSTA", True), "Free": ("MTA", False),
                          "Both": ("MTA", False), "Neutral": ("NA", True), "None": ("ui", True)}
    assert out["apartments"].count("HostSTA") == 1
    in_order(out["lines"], "[ui]   Neutral: lives in 'NA'", "[MTA] Apartment: lives in 'HostSTA'")


def check_neutral_apartment(out: dict[str, Any]) -> None:
    # R5, R33: a proxy to the NA object; each call runs in the NA on the caller's own thread
    assert out["proxy"] is True
    assert len(out["calls"]) == 2
    for call in out["calls"]:
        assert call["seen"]["type"] == "NA"
        assert call["seen"]["thread"] == call["mine"]["thread"]
        assert call["seen"]["os_thread"] == call["mine"]["os_thread"]
    assert out["calls"][0]["mine"]["thread"] != out["calls"][1]["mine"]["thread"]
    assert [c["seen"]["n"] for c in out["calls"]] == [1, 2]  # one object, two callers
    # R33: from inside the NA, no proxy
    assert out["proxy_in_na"] is False
    in_order(out["lines"], "[a] CoCreateInstance gave a proxy", "[NA] Counter.Bump #1",
             "[b] Bump ran in the NA, on my own thread: True")


def check_explore_orders(out: dict[str, Any]) -> None:
    # R28 R29: with no latency at all, the order of deliveries alone puts the cancel in each
    # stage, or after the call completed; exhaustive exploration runs every order once
    assert out["exhausted"] is True
    assert set(out["exhaustive"]) == {"queued", "running", "finished",
                                      "completed before the cancel"}
    assert set(out["random"]) <= set(out["exhaustive"])
    assert out["runs"] < 100  # the partial-order reduction: 149 runs without it


def check_explore_pct(out: dict[str, Any]) -> None:
    # the planted depth-3 bug: not under the default schedule, found by PCT, shrunk, and
    # replayed from the saved file to the same failure
    assert out["default"] == ("x1", "y1", "x2", "y2", "x3", "y3")
    assert out["preemptions"] >= 1
    replayed = out["replayed"]
    assert replayed.type == "AssertionError" and "crossed records" in replayed.message


CHECKS: dict[str, Callable[[Any], None]] = {
    "hello_sta": check_hello_sta,
    "reentrancy": check_reentrancy,
    "message_filter": check_message_filter,
    "async_call": check_async_call,
    "cancel_async_call": check_cancel_async_call,
    "completion_callback": check_completion_callback,
    "cancel_sync_call": check_cancel_sync_call,
    "explore_cancel_race": check_explore_cancel_race,
    "explore_orders": check_explore_orders,
    "explore_pct": check_explore_pct,
    "inproc_threading": check_inproc_threading,
    "neutral_apartment": check_neutral_apartment,
}


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))


# --------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_main(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    # the rules each check names (R2, R4, R13, R16, R19-R24, R27-R31)
    out = run_main(name)
    CHECKS[name](out)
    printed = capsys.readouterr().out
    assert printed.strip()
    for line in out.get("lines", []):  # main() printed the timeline it returned
        assert line in printed


def test_every_example_is_tested() -> None:
    # every file in examples/ is run by test_example_main (R13 onwards: all the examples)
    names = example_names()
    assert names, f"no examples found in {EXAMPLES_DIR}"
    assert set(names) == set(CHECKS), (
        f"untested examples: {sorted(set(names) - set(CHECKS))}; "
        f"checks without an example: {sorted(set(CHECKS) - set(names))}"
    )


def test_examples_run_as_scripts() -> None:
    # R13 onwards: `python examples/NAME.py` runs each example to its end (exit code 0);
    # all at once, to keep it cheap
    procs = {
        name: subprocess.Popen([sys.executable, str(EXAMPLES_DIR / f"{name}.py")], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in example_names()
    }
    failures = []
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            failures.append(f"{name}: timed out")
            continue
        if proc.returncode != 0:
            failures.append(f"{name}: exit code {proc.returncode}\n{stderr[-2000:]}")
        elif not stdout.strip():
            failures.append(f"{name}: printed nothing")
    assert not failures, "\n".join(failures)
