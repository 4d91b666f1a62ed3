"""In-process server threading: where CoCreateInstance puts an object (rule R33).

Microsoft's page "In-process server threading issues" explains that an in-process class
declares a ThreadingModel, and COM places each new object by comparing it with the creator's
apartment: when they are compatible, the creator gets the object itself; when not, COM creates
the object in a compatible apartment and hands the creator a proxy. Classes with no
ThreadingModel at all (legacy ones) always go to the main STA.

This script creates one object of each threading model from an STA and from the MTA and prints,
for each, where it was constructed and whether the creator got the object or a proxy. The
"Apartment" object made from the MTA lands in the host STA, which COM creates on first need.

    python examples/inproc_threading.py
"""

from __future__ import annotations

import asyncio
from typing import Any

import comsim

LINES: list[str] = []


def say(text: str) -> None:
    apt = comsim.current_apartment()
    line = f"[{apt.name if apt else 'main'}] {text}"
    LINES.append(line)
    print(line)


class IWhere(comsim.Interface):
    async def BornIn(self) -> str: ...


class Thing(comsim.CoClass, IWhere):
    def __init__(self) -> None:
        super().__init__()
        apt = comsim.current_apartment()
        assert apt is not None
        self.born_in = apt.name

    async def BornIn(self) -> str:
        return self.born_in


class ApartmentThing(Thing):
    threading_model = "Apartment"


class FreeThing(Thing):
    threading_model = "Free"


class BothThing(Thing):
    threading_model = "Both"


class NeutralThing(Thing):
    threading_model = "Neutral"


class LegacyThing(Thing):
    threading_model = None


CLASSES = (ApartmentThing, FreeThing, BothThing, NeutralThing, LegacyThing)


async def create_all() -> dict[str, tuple[str, bool]]:
    """In the caller's apartment: one object of each model; (where it lives, got a proxy?)."""
    seen: dict[str, tuple[str, bool]] = {}
    for cls in CLASSES:
        obj = await comsim.CoCreateInstance(cls, IWhere)
        proxy = isinstance(obj, comsim.Proxy)
        born_in = await obj.BornIn()
        say(f"{cls.threading_model!s:>9}: lives in {born_in!r:10} -> "
            f"{'a proxy' if proxy else 'the object itself'}")
        seen[str(cls.threading_model)] = (born_in, proxy)
    return seen


async def main() -> dict[str, Any]:
    LINES.clear()
    out: dict[str, Any] = {}
    async with comsim.Runtime() as rt:
        ui = await rt.create_sta("ui")  # the first STA: the main STA
        out["sta"] = await ui.run(create_all)
        out["mta"] = await rt.mta.run(create_all)
        out["apartments"] = [a.name for a in rt.apartments]
        say(f"apartments now: {out['apartments']}")
    out["lines"] = list(LINES)
    return out


if __name__ == "__main__":
    asyncio.run(main())
