"""Print R33's placement table (comsim._core.activation.TABLE) as a markdown table: for each
creator and threading model, the apartment where CoCreateInstance constructs the object.

    python scripts/draw_placement.py            # prints the table
    python scripts/draw_placement.py --readme   # rewrites its block in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comsim._core.activation import MODELS, TABLE, Creator, Placement
from scripts._readme_block import replace_block

START, END = "<!-- placement-table:start -->", "<!-- placement-table:end -->"

#: short cell texts; "its own": the creator gets the object itself, elsewhere a proxy
_CELL = {
    Placement.CREATOR: "its own (no proxy)",
    Placement.MTA: "MTA",
    Placement.NA: "NA",
    Placement.MAIN_STA: "main STA",
    Placement.HOST_STA: "host STA",
    Placement.THREAD_STA: "the STA under the NA",
}


def table() -> str:
    header = ["creator", *(repr(m) if m is not None else "None" for m in MODELS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for creator in Creator:
        if creator is Creator.NONE:
            cells = ["CO_E_NOTINITIALIZED"] * len(MODELS)
        else:
            cells = [_CELL[TABLE[creator, m]] for m in MODELS]
        lines.append("| " + " | ".join([creator.value, *cells]) + " |")
    lines.append("")
    lines.append('"main STA": the host STA, made the main STA, when no STA exists yet. '
                 "A proxy, bound to the creator's apartment, in every cell but the "
                 "creator's own.")
    return "\n".join(lines)


def main() -> None:
    text = table()
    if "--readme" in sys.argv:
        replace_block(START, END, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
