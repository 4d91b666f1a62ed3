"""Latency of comsim's calls, each beside a raw-Python baseline measured in the same run.

    python benchmarks/latency.py [--n 6000] [--rounds 12] [--rows ROWS] [--json FILE]
                                 [--plot FILE.png] [--quick]

The same as ``comsim bench`` (which works from an installed wheel): the benchmark lives in
the package, ``comsim._bench``; see ``comsim bench --help`` for the rows and the baselines.
This file runs it from a source checkout and keeps the names the other benchmarks use
(``seam.py``, ``floor.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comsim._bench.baselines import (
    ROUNDS,
    Placement,
    Samples,
    baseline_one_loop,
    baseline_two_loops,
)
from comsim._bench.baselines import Plain as _Plain
from comsim._bench.baselines import pin as _pin
from comsim._bench.baselines import ratio as _ratio
from comsim._bench.baselines import sample as _sample
from comsim._bench.baselines import stats as _stats
from comsim._bench.command import main as _main
from comsim._bench.measure import (
    AsyncICalc,
    Calc,
    ICalc,
    comsim_deterministic,
    comsim_same_apartment,
    comsim_threaded,
)

__all__ = [
    "ROUNDS",
    "AsyncICalc",
    "Calc",
    "ICalc",
    "Placement",
    "Samples",
    "_Plain",
    "_pin",
    "_ratio",
    "_sample",
    "_stats",
    "baseline_one_loop",
    "baseline_two_loops",
    "comsim_deterministic",
    "comsim_same_apartment",
    "comsim_threaded",
    "main",
]


def main(argv: list[str] | None = None) -> int:
    return _main(argv, prog="benchmarks/latency.py")


if __name__ == "__main__":
    sys.exit(main())
