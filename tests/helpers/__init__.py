"""Scaffolding the tests share, instead of a copy in each file.

- :mod:`.ifaces`: interfaces declared alike in several files (``ICalc``, ``IPing``, ``ISum``).
- :mod:`.servers`: server objects and server-side routines (``Calc``, ``until_cancelled``).
- :mod:`.apartments`: setting up apartments and calls (``pair``, ``serve``, ``unmarshal``,
  ``new_call``, ``drain``, ``shut``, ``hresult_of``, small ``Apartment.run`` units).
- :mod:`.paths`: the project's root and loading ``examples/*.py``.

Import from the package: ``from ..helpers import ICalc, pair``. A test whose interface or
server differs in any detail (a method, a log line, its ``cancel_policy``) keeps its own: an
interface's name gives its iid, and tests read class and method names in messages and traces.
"""

from .apartments import (
    Pair,
    add_via,
    drain,
    hresult_of,
    new_call,
    noop,
    pair,
    serve,
    shut,
    thread_id,
    unmarshal,
)
from .ifaces import AsyncISum, ICalc, IPing, ISum
from .paths import EXAMPLES_DIR, ROOT, load_example
from .servers import Calc, until_cancelled

__all__ = [
    "EXAMPLES_DIR",
    "ROOT",
    "AsyncISum",
    "Calc",
    "ICalc",
    "IPing",
    "ISum",
    "Pair",
    "add_via",
    "drain",
    "hresult_of",
    "load_example",
    "new_call",
    "noop",
    "pair",
    "serve",
    "shut",
    "thread_id",
    "unmarshal",
    "until_cancelled",
]
