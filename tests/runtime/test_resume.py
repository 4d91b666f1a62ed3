"""``futures.resume``: a hand-off into a loop lets the waiting task go on in the same turn.

A message taken in by an apartment (a request for an idle server task, a reply for the waiting
caller) wakes a task. asyncio's ``set_result`` would run that task a turn later; ``resume``
runs its next step at once when nothing else is running on the loop (a plain callback), and is
plain ``set_result`` everywhere else.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from comsim._runtime.loop import resume

pytestmark = [pytest.mark.asyncio, pytest.mark.threaded_only]


async def _waiter(fut: asyncio.Future[Any], log: list[str]) -> None:
    log.append(f"got {await fut}")


async def test_from_a_callback_the_waiting_task_steps_at_once() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    log: list[str] = []
    task = loop.create_task(_waiter(fut, log))
    await asyncio.sleep(0)  # the task now waits on fut
    seen: list[Any] = []

    def callback() -> None:
        assert asyncio.current_task() is None  # a plain callback
        resume(fut, 7)
        seen.append(list(log))  # the task's step ran inside resume
        seen.append(task.done())

    loop.call_soon(callback)
    await task
    assert seen == [["got 7"], True]


async def test_inside_a_task_it_is_plain_set_result() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    log: list[str] = []
    task = loop.create_task(_waiter(fut, log))
    await asyncio.sleep(0)
    resume(fut, 1)  # we are a task: the waiter runs a turn later, not inside our step
    assert log == []
    await task
    assert log == ["got 1"]


async def test_a_done_future_is_left_alone_and_no_waiter_is_fine() -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    done.cancel()
    lone: asyncio.Future[Any] = loop.create_future()
    results: list[Any] = []

    def callback() -> None:
        resume(done, 1)  # a time-out or cancel came first: nothing happens
        resume(lone, 2)  # nobody waits yet
        results.append(lone.result())

    loop.call_soon(callback)
    await asyncio.sleep(0)
    assert done.cancelled()
    assert results == [2]


async def test_two_waiters_wake_in_the_next_turn() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    log: list[str] = []
    tasks = [loop.create_task(_waiter(fut, log)) for _ in range(2)]
    await asyncio.sleep(0)
    steps: list[int] = []

    def callback() -> None:
        resume(fut, 3)
        steps.append(len(log))  # not stepped here: set_result wakes both a turn later

    loop.call_soon(callback)
    await asyncio.gather(*tasks)
    assert steps == [0]
    assert log == ["got 3", "got 3"]


async def test_a_waiter_whose_context_is_entered_still_wakes() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    log: list[str] = []
    ctx = contextvars.Context()
    task = loop.create_task(_waiter(fut, log), context=ctx)
    await asyncio.sleep(0)

    def callback() -> None:
        resume(fut, 4)  # the task's own context is entered: its step is left to the loop

    loop.call_soon(ctx.run, callback)
    await task
    assert log == ["got 4"]
