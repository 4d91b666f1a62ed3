"""A constructor that raises anything fails ``CoCreateInstance`` with E_FAIL (R33).

A constructor is user code run inside the target apartment: whatever it raises that is not a
COMError -- ``SystemExit``, ``KeyboardInterrupt``, a ``CancelledError`` of its own, a user
``BaseException`` -- becomes ``COMError(E_FAIL)`` with the original chained, wherever the
object is placed, and the apartment serves on (the fault boundary).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import comsim
from comsim import hresult

from ..helpers import ICalc, serve
from .test_activation import MODELS, IWhere, run_as


class Odd(BaseException):
    """A BaseException of the user's own."""


RAISES: dict[str, type[BaseException]] = {
    "Odd": Odd,
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "CancelledError": asyncio.CancelledError,
    "GeneratorExit": GeneratorExit,
}


def _raising(model: str | None, exc_type: type[BaseException]) -> type[Any]:
    """A class of ``model`` whose constructor raises ``exc_type``."""

    class Raises(comsim.CoClass, IWhere):
        threading_model = model

        def __init__(self) -> None:
            super().__init__()
            raise exc_type("from the constructor")

        async def Home(self) -> tuple[str, str]:
            return ("", "")

    return Raises


@pytest.mark.parametrize("name", list(RAISES))
@pytest.mark.parametrize("model", list(MODELS), ids=[str(m) for m in MODELS])
@pytest.mark.parametrize("creator", ["STA", "MTA"])
@pytest.mark.asyncio
async def test_constructor_raising_anything_gives_e_fail(
        rt: comsim.Runtime, creator: str, model: str | None, name: str) -> None:
    # R33 (choice): any exception but a COMError, BaseExceptions included, gives E_FAIL with
    # the original chained, at home or elsewhere; the target apartment creates on
    await rt.create_sta("main")
    await rt.create_sta("other")
    cls = _raising(model, RAISES[name])

    async def create() -> tuple[comsim.COMError, tuple[str, str]]:
        try:
            await comsim.CoCreateInstance(cls, IWhere)
        except comsim.COMError as exc:
            good = await comsim.CoCreateInstance(MODELS[model], IWhere)
            return exc, await good.Home()
        raise AssertionError("no error")

    err, (born_in, runs_in) = await run_as(rt, creator, create)
    assert err.hresult == hresult.E_FAIL
    assert isinstance(err.__cause__, RAISES[name])
    assert name in str(err) and "Raises" in str(err)
    assert born_in == runs_in  # the target apartment lives on


class CancelsItsTask(comsim.CoClass, IWhere):
    """Its constructor cancels the task it runs in, then raises CancelledError."""

    threading_model = "Both"

    def __init__(self) -> None:
        super().__init__()
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        raise asyncio.CancelledError("from the constructor")

    async def Home(self) -> tuple[str, str]:
        return ("", "")


@pytest.mark.asyncio
async def test_a_cancel_of_the_creator_still_cancels_it(rt: comsim.Runtime) -> None:
    # R33 R32: the constructor's CancelledError is its own (E_FAIL), but a cancel of the
    # creator's task is not lost: it comes at the task's next await
    sta = await rt.create_sta("s")
    seen: list[Any] = []

    async def creator() -> None:
        try:
            await comsim.CoCreateInstance(CancelsItsTask, IWhere)
        except comsim.COMError as exc:
            seen.append(exc.hresult)
        await asyncio.Event().wait()  # the cancel comes here
        seen.append("not cancelled")

    async def run_creator() -> bool:
        task = asyncio.ensure_future(creator())
        await asyncio.wait([task])
        return task.cancelled()

    assert await sta.run(run_creator) is True
    assert seen == [hresult.E_FAIL]


class _Widget(comsim.CoClass, ICalc):
    threading_model = "Apartment"  # from the MTA: the host STA (R33)

    async def Add(self, a: int, b: int) -> int:
        return a + b


@pytest.mark.asyncio
@pytest.mark.deterministic_only  # seeded: whether the unit gets there before the MTA's end
async def test_creating_while_the_runtime_ends_fails_with_disconnected() -> None:
    # R33, R18: an MTA unit still running while the runtime is left (its STAs are gone)
    # creates an apartment-model object: the host STA cannot be made any more. Before, a bare
    # RuntimeError("the runtime is not running") came out of CoCreateInstance. Whether the
    # unit creates before the MTA's own shutdown cancels it depends on the order of delivery:
    # over seeds, some do, and each of those gets RPC_E_DISCONNECTED
    outcomes = []
    for seed in range(12):
        outcome: list[Any] = []
        ready = comsim.ManualResetEvent()
        async with comsim.Runtime(deterministic=True, seed=seed) as rt:
            ui = await rt.create_sta("ui")
            _obj, stream = await serve(ui)

            async def worker(stream: Any = stream, outcome: list[Any] = outcome,
                             ready: Any = ready) -> None:
                proxy: Any = comsim.unmarshal_interface(stream)
                ready.Signal()
                try:
                    while True:  # until 'ui' has shut down: the runtime is being left
                        await proxy.Add(1, 2)
                except comsim.COMError:
                    pass
                try:
                    await comsim.CoCreateInstance(_Widget, ICalc)
                    outcome.append("created")
                except comsim.COMError as exc:
                    outcome.append(hresult.name(exc.hresult))
                except Exception as exc:  # the fault: reported to the test
                    outcome.append(repr(exc))

            running = asyncio.ensure_future(rt.mta.run(worker))
            await ready.Wait(0, comsim.INFINITE)
        await asyncio.gather(running, return_exceptions=True)  # it may end after the exit
        outcomes.append(outcome)
    reached = [o for o in outcomes if o]
    assert reached, outcomes
    assert all(o == ["RPC_E_DISCONNECTED"] for o in reached), outcomes
