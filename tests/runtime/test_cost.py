"""What a call does not cost: no thread, loop, lock or task is made per call, and no trace
work is done when nobody listens (the latency design behind R13)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import comsim
from comsim._runtime import trace

from ..helpers import Calc, ICalc


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_a_call_creates_no_thread_loop_lock_or_task(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:  # R13
    async with comsim.Runtime() as rt:
        ui, worker = await rt.create_sta("ui"), await rt.create_sta("worker")

        async def serve() -> Any:
            return comsim.marshal_interface(Calc(), ICalc, flags=comsim.MSHLFLAGS.TABLESTRONG)

        stream = await worker.run(serve)
        made: list[str] = []

        def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
            made.append("task")
            return asyncio.Task(coro, loop=loop, **kw)

        async def count_tasks() -> None:
            asyncio.get_running_loop().set_task_factory(counting)  # type: ignore[arg-type]

        await ui.run(count_tasks)
        await worker.run(count_tasks)

        async def client(n: int) -> int:
            proxy = comsim.unmarshal_interface(stream)
            total = 0
            for i in range(n):
                total += await proxy.Add(i, 1)
            return total

        assert await ui.run(client, 5) == 15  # warm-up: the server task is made once
        real_lock, real_loop = threading.Lock, asyncio.new_event_loop
        real_start = threading.Thread.start
        monkeypatch.setattr(threading, "Lock", lambda: (made.append("lock"), real_lock())[1])
        monkeypatch.setattr(asyncio, "new_event_loop",
                            lambda: (made.append("loop"), real_loop())[1])
        monkeypatch.setattr(threading.Thread, "start",
                            lambda self: (made.append("thread"), real_start(self))[1])
        monkeypatch.setattr(trace, "emit", lambda *a, **k: made.append("trace"))
        made.clear()
        threads = threading.active_count()
        assert await ui.run(client, 50) == sum(range(50)) + 50
        assert threading.active_count() == threads
        # the only task: the run() unit itself; none per call, no trace work (nobody listens)
        assert made == ["task"]
        monkeypatch.undo()


@pytest.mark.threaded_only
@pytest.mark.asyncio
async def test_a_call_takes_one_loop_turn_in_each_apartment(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:  # R13
    """The request wakes the server task, and the reply the caller, in the turn that takes the
    message in (``futures.resume``): about one turn per call on each side, where plain
    ``set_result`` hand-offs take two (over four in all)."""
    import asyncio.base_events

    async with comsim.Runtime() as rt:
        ui, worker = await rt.create_sta("ui"), await rt.create_sta("worker")

        async def serve() -> Any:
            return comsim.marshal_interface(Calc(), ICalc, flags=comsim.MSHLFLAGS.TABLESTRONG)

        stream = await worker.run(serve)
        turns: dict[int, int] = {}
        real = asyncio.base_events.BaseEventLoop._run_once

        def counting(loop: asyncio.base_events.BaseEventLoop) -> None:
            turns[id(loop)] = turns.get(id(loop), 0) + 1
            real(loop)

        async def client(n: int) -> int:
            proxy = comsim.unmarshal_interface(stream)
            for _ in range(10):  # warm-up: the server task is made
                await proxy.Add(1, 1)
            monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "_run_once", counting)
            total = 0
            for i in range(n):
                total += await proxy.Add(i, 1)
            monkeypatch.undo()
            return total

        n = 200
        assert await ui.run(client, n) == sum(range(n)) + n
        loops = {id(ui._loop), id(worker._loop)}
        per_call = sum(count for key, count in turns.items() if key in loops) / n
        assert per_call < 3.0, per_call
