"""The latency benchmark's rows: each a comsim call beside a raw-Python baseline measured in
the same run, in rounds that alternate the two.

- ``same``: a call on an object in the caller's own apartment / a plain method awaited
  directly, in blocks that alternate inside the same apartment;
- ``sta-sta``, ``mta-sta``, ``sta-mta``, ``async``: cross-apartment calls on the threaded
  runtime / two plain asyncio loops on two threads (``baselines.baseline_two_loops``);
- ``cpu1``: both threads on one CPU, for comsim (``Runtime(cpu=N)``) and the baseline alike;
  ``cpu2``: the caller's thread on one CPU and the server's on another (Linux, two CPUs);
  where the OS puts the two threads decides much of a round trip's cost;
- ``cancel``: ``Cancel(0)`` then ``Finish_`` on a call whose server method waits / one
  two-loop round trip;
- ``det``: the deterministic runtime's STA->STA call / one ``asyncio.Queue`` hop on one loop;
- ``nta``: an STA->NA call (R5: no thread switch) / a plain method awaited directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from .baselines import ROUNDS, Tick, allowed_cpus, no_tick, ratio, round_ratios, stats
from .measure import comsim_same_apartment, comsim_threaded, deterministic_rounds
from .nta import measure_nta

Measure = Callable[[int, int, Tick], tuple[list[float], list[float]]]


@dataclass(frozen=True)
class RowSpec:
    key: str  #: what ``--rows`` names it by
    name: str  #: the call measured
    baseline: str  #: what it is measured beside
    measure: Measure  #: (n, rounds, tick) -> (comsim's samples, the baseline's), seconds
    needs: Callable[[], str | None] = lambda: None  #: why it cannot run here, or None


@dataclass
class Row:
    """One row's result; samples in seconds."""

    key: str
    name: str
    baseline: str
    ours: list[float] = field(repr=False)
    base: list[float] = field(repr=False)

    @property
    def ratio(self) -> float:
        """The median over rounds of comsim's p50 over the baseline's p50 in the same round."""
        return ratio(self.ours, self.base)

    def as_dict(self) -> dict[str, object]:
        st, bst = stats(self.ours), stats(self.base)
        return {
            "key": self.key, "name": self.name,
            "p50_us": round(st["p50"], 2), "p99_us": round(st["p99"], 2),
            "mean_us": round(st["mean"], 2), "samples": len(self.ours),
            "baseline": self.baseline,
            "baseline_p50_us": round(bst["p50"], 2), "baseline_p99_us": round(bst["p99"], 2),
            "baseline_mean_us": round(bst["mean"], 2), "baseline_samples": len(self.base),
            "ratio_p50": round(self.ratio, 3),
            "round_ratios": [round(r, 3) for r in round_ratios(self.ours, self.base)],
        }


def _threaded(client: str, server: str, kind: str = "sync") -> Measure:
    def measure(n: int, rounds: int, tick: Tick) -> tuple[list[float], list[float]]:
        return asyncio.run(comsim_threaded(n, client, server, kind, baseline=(None, None),
                                           rounds=rounds, tick=tick))

    return measure


def _one_cpu(n: int, rounds: int, tick: Tick) -> tuple[list[float], list[float]]:
    c0 = allowed_cpus()[0]
    return asyncio.run(comsim_threaded(n, "sta1", "sta2", "sync", baseline=(c0, c0), cpu=c0,
                                       rounds=rounds, tick=tick))


def _two_cpus(n: int, rounds: int, tick: Tick) -> tuple[list[float], list[float]]:
    placed = (allowed_cpus()[0], allowed_cpus()[1])
    return asyncio.run(comsim_threaded(n, "sta1", "sta2", "sync", baseline=placed,
                                       cpus=placed, rounds=rounds, tick=tick))


def _needs_two_cpus() -> str | None:
    return None if len(allowed_cpus()) >= 2 else "needs two CPUs (Linux affinity)"


def _cancel(n: int, rounds: int, tick: Tick) -> tuple[list[float], list[float]]:
    return asyncio.run(comsim_threaded(max(200, n // 10), "sta1", "sta2", "cancel",
                                       baseline=(None, None), rounds=rounds, tick=tick))


ROWS: tuple[RowSpec, ...] = (
    RowSpec("same", "same apartment", "direct await",
            lambda n, rounds, tick: asyncio.run(comsim_same_apartment(n, rounds=rounds,
                                                                      tick=tick))),
    RowSpec("sta-sta", "STA->STA", "two loops", _threaded("sta1", "sta2")),
    RowSpec("mta-sta", "MTA->STA", "two loops", _threaded("mta", "sta1")),
    RowSpec("sta-mta", "STA->MTA", "two loops", _threaded("sta1", "mta")),
    RowSpec("async", "STA->STA Begin_/Finish_", "two loops",
            _threaded("sta1", "sta2", "async")),
    RowSpec("cpu1", "STA->STA, Runtime(cpu=N)", "two loops, 1 cpu", _one_cpu),
    RowSpec("cpu2", "STA->STA, STAs on 2 CPUs", "two loops, 2 cpus", _two_cpus,
            _needs_two_cpus),
    RowSpec("cancel", "STA->STA Cancel(0)->Finish_", "two loops", _cancel),
    RowSpec("det", "deterministic STA->STA", "one loop",
            lambda n, rounds, tick: deterministic_rounds(n, rounds=rounds, tick=tick)),
    RowSpec("nta", "STA->NA", "direct await", measure_nta),
)
KEYS = tuple(spec.key for spec in ROWS)


def select(keys: list[str] | None) -> tuple[list[RowSpec], list[str]]:
    """The rows named by ``keys`` (all if None) that can run here, in the table's order, and
    a note for each that cannot. Raises ValueError for a name that is no row's."""
    wanted = set(KEYS if keys is None else keys)
    unknown = wanted - set(KEYS)
    if unknown:
        raise ValueError(f"unknown row(s): {', '.join(sorted(unknown))} "
                         f"(rows: {', '.join(KEYS)})")
    chosen, skipped = [], []
    for spec in ROWS:
        if spec.key not in wanted:
            continue
        why = spec.needs()
        if why is None:
            chosen.append(spec)
        elif keys is not None:  # asked for by name: say why it is missing
            skipped.append(f"row {spec.key!r} skipped: {why}")
    return chosen, skipped


def run_rows(specs: list[RowSpec], n: int, rounds: int = ROUNDS,
             start: Callable[[RowSpec], None] = lambda spec: None,
             tick: Tick = no_tick) -> list[Row]:
    """Measure each row; ``start`` is called as a row begins, ``tick`` after each round."""
    out = []
    for spec in specs:
        start(spec)
        ours, base = spec.measure(n, rounds, tick)
        out.append(Row(spec.key, spec.name, spec.baseline, ours, base))
    return out
