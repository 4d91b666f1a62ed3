"""Rewrite a block of README.md between two markers (for scripts that draw from rule tables)."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def replace_block(start: str, end: str, text: str) -> None:
    """Put ``text`` between the lines ``start`` and ``end`` of README.md."""
    body = README.read_text()
    a, b = body.index(start) + len(start), body.index(end)
    README.write_text(body[:a] + "\n" + text + "\n" + body[b:])
