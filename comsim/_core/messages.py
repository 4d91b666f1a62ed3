"""The messages between apartments, as the core names them.

Every message crosses through the runtime's transport (``comsim._runtime.transport``) and is
taken in by its target apartment at once (none is a unit, R2):

- request: client -> server apartment, the call record (a ``stub.StubCall``);
  ``server.on_request``
- cancel: client -> server apartment, the call record; ``server.on_cancel``
- reply: server -> client apartment, a ``Reply``; ``record.on_reply``
- rejection: server -> client apartment, a ``Reply`` with ``reject`` set (R16);
  ``record.on_reply``
- apartment gone: a ``Reply`` of RPC_E_DISCONNECTED (R18), from the server apartment's
  teardown or at once when it takes no more messages; ``record.on_reply``
- run: caller -> apartment, an ``Apartment.run`` job; ``jobs.RunUnits._on_run``
- result: apartment -> the caller's loop, the job's outcome; ``futures.settle``
- signal: any -> a waiter's apartment, an event's wake-up (R23); ``events._wake_future``

The request and cancel carry the call record itself (one object per call, no copy per hop);
replies are immutable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple


class Reply(NamedTuple):
    """A reply message: an HRESULT and, on success, the packed result (R13, R14); ``text`` and
    ``exc`` say why a call failed; ``reject`` is set on a rejection (SERVERCALL_REJECTED or
    _RETRYLATER, R16)."""

    hresult: int
    value: Any = None
    text: str | None = None
    exc: BaseException | None = None
    reject: int | None = None


#: ``Reply`` from a tuple of its five fields, without a Python ``__new__`` (the hot path's)
new_reply: Callable[[tuple[Any, ...]], Reply] = functools.partial(tuple.__new__, Reply)
