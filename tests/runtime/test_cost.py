"""What a call does not cost: no thread, loop, lock or task is made per call, and no trace
work is done when nobody listens (the latency design behind R13)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import comsim
from comsim._runtime import trace


class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...


class Calc(comsim.CoClass, ICalc):
    async def Add(self, a: int, b: int) -> int:
        return a + b


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
