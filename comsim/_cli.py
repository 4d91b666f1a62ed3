"""The ``comsim`` command: ``comsim demo`` and ``comsim bench``."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comsim", description="COM apartments on asyncio")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="run the seed scenario and print its timelines")
    sub.add_parser("bench", help="measure call latency against raw baselines "
                                 "(options go to benchmarks/latency.py, e.g. --n 3000)")
    ns, rest = parser.parse_known_args(argv)
    if ns.cmd == "demo":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        from ._demo import run_demo

        run_demo()
        return 0
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "latency.py"
    if not script.exists():
        print("comsim bench needs a source checkout (benchmarks/latency.py)", file=sys.stderr)
        return 2
    sys.argv = [str(script), *rest]
    runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
