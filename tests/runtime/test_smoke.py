import pytest

import comsim

from ..helpers import Calc, ICalc


@pytest.mark.asyncio
async def test_sta_to_sta_call(rt: comsim.Runtime) -> None:  # R13
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def make() -> comsim.MarshalStream:
        return comsim.marshal_interface(Calc(), ICalc)

    stream = await b.run(make)

    async def use() -> int:
        p = comsim.unmarshal_interface(stream)
        return await p.Add(2, 3)

    assert await a.run(use) == 5
