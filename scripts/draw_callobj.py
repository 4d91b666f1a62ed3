"""Draw the call object's state machine (comsim._core.callobj.TABLE) as a Mermaid diagram.

    python scripts/draw_callobj.py            # prints the diagram
    python scripts/draw_callobj.py --readme   # rewrites the block between the markers in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comsim._core.callobj import TABLE, Effect
from scripts._readme_block import replace_block

START, END = "<!-- callobj-diagram:start -->", "<!-- callobj-diagram:end -->"


def diagram() -> str:
    edges: dict[tuple[str, str], list[str]] = {}
    for (state, inp), (effect, nxt, _code) in TABLE.items():
        if state is nxt and effect in (Effect.REFUSE, Effect.STATUS, Effect.NOTHING, Effect.DROP):
            continue  # self-loops that only answer a status: in the table, not in the picture
        label = inp.value if effect is Effect.NOTHING else f"{inp.value} / {effect.value}"
        edges.setdefault((state.value, nxt.value), []).append(label)
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> idle"]
    for (a, b), labels in edges.items():
        lines.append(f"    {a} --> {b}: {'<br/>'.join(labels)}")
    lines.append("```")
    return "\n".join(lines)


def main() -> None:
    text = diagram()
    if "--readme" in sys.argv:
        replace_block(START, END, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
