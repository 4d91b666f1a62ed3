"""``comsim bench``: the latency of comsim's calls, each beside a raw-Python baseline measured
in the same run (``rows``), printed as a table, recorded as JSON, drawn with matplotlib
(``report``). It uses only comsim's public API, so it runs from an installed wheel."""

from __future__ import annotations

from .command import DESCRIPTION, add_arguments, epilog, main, run

__all__ = ["DESCRIPTION", "add_arguments", "epilog", "main", "run"]
