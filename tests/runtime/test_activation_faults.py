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
