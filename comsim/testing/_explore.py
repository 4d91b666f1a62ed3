"""``explore``: run one scenario under many seeds and keep each distinct outcome's first seed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any

from .._runtime.runtime import Runtime


class Exploration(dict[Hashable, int]):
    """``{outcome: first seed that reached it}``, plus how many runs reached each outcome."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[Hashable, int] = {}
        self.runs = 0

    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: seed {v} ({self.counts[k]}x)" for k, v in self.items())
        return f"<Exploration {self.runs} runs: {body}>"


def explore(scenario: Callable[[Runtime], Awaitable[Any]], seeds: Iterable[int] = range(200),
            *, until: Callable[[Exploration], bool] | None = None) -> Exploration:
    """Run ``scenario(rt)`` once per seed, each on a fresh deterministic runtime in virtual time.

    ``scenario`` returns an outcome (made hashable with ``repr`` if it is not). Gives the
    distinct outcomes, each with the first seed that reached it, so that any one can be replayed
    with ``Runtime(deterministic=True, seed=that_seed)``. ``until`` stops early once it returns
    True. Exceptions from the scenario propagate (with the seed in a note).
    """
    from . import run

    found = Exploration()
    for seed in seeds:

        async def main(seed: int = seed) -> Any:
            async with Runtime(deterministic=True, seed=seed) as rt:
                return await scenario(rt)

        try:
            outcome = run(main)
        except BaseException as exc:
            exc.add_note(f"comsim.testing.explore: failed under seed {seed}")
            raise
        try:
            hash(outcome)
        except TypeError:
            outcome = repr(outcome)
        found.setdefault(outcome, seed)
        found.counts[outcome] = found.counts.get(outcome, 0) + 1
        found.runs += 1
        if until is not None and until(found):
            break
    return found
