"""Entry points between layers that message each other, bound late.

A call's client side sends requests and cancels to the server side, which sends replies back;
an apartment starts call units and answers calls it will not run. Each of these goes from a
lower module to a higher one, so instead of importing upwards (a cycle), the lower module calls
through ``HOOKS``, which the composition root (``runtime``) fills once at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _unbound(*_args: Any) -> Any:
    raise RuntimeError("comsim's runtime hooks are not installed: import comsim first")


class Hooks:
    """The late-bound entry points (see the module's text). Each takes the apartment first
    where it runs in one."""

    __slots__ = ("answer", "cancel_outgoing", "dispatch", "on_cancel", "on_request",
                 "stub_goes")

    def __init__(self) -> None:
        #: (apartment, call): a request message arrives at the server apartment (R13)
        self.on_request: Callable[[Any, Any], None] = _unbound
        #: (apartment, call): a cancel message arrives at the server apartment (R28-R30)
        self.on_cancel: Callable[[Any, Any], None] = _unbound
        #: (apartment, call, unit): a call unit starts (R2)
        self.dispatch: Callable[[Any, Any, Any], None] = _unbound
        #: (apartment, call, hresult): answer a call that will not run (R17, R18)
        self.answer: Callable[[Any, Any, int], None] = _unbound
        #: (call): MessagePending said PENDINGMSG_CANCELCALL for this outgoing call (R16)
        self.cancel_outgoing: Callable[[Any], None] = _unbound
        #: (stub, LifeEffect): carry out what a stub's life step decided (``lifetime``)
        self.stub_goes: Callable[[Any, Any], None] = _unbound


HOOKS = Hooks()
