"""Interface method descriptions and argument binding (R11, R20).

Binding arguments to a method's declared signature happens on the caller's side, before
anything is sent: wrong arguments fail with ``E_INVALIDARG``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from . import hresult as hr
from .hresult import COMError


class MethodSpec:
    """One method of an interface: its name and how arguments bind to it."""

    __slots__ = ("arguments_label", "interface", "is_async", "name", "npos", "result_label",
                 "signature", "simple")

    def __init__(self, interface: type, name: str, func: Callable[..., Any]) -> None:
        self.name = name
        self.interface = interface
        sig = inspect.signature(func)
        params = list(sig.parameters.values())[1:]  # drop self
        self.signature = sig.replace(parameters=params)
        self.simple = all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            for p in params
        )
        self.npos = len(params)
        self.is_async = inspect.iscoroutinefunction(func)
        #: what error messages call the arguments and the result (made once, not per call)
        self.arguments_label = f"an argument of {interface.__name__}.{name}"
        self.result_label = f"the result of {interface.__name__}.{name}"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The arguments as one positional tuple; ``COMError(E_INVALIDARG)`` when they do not
        fit the declared signature."""
        if not kwargs and self.simple and len(args) == self.npos:
            return args
        try:
            ba = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise COMError(
                hr.E_INVALIDARG,
                f"{self.interface.__name__}.{self.name}{self.signature}: {exc}; "
                "nothing was sent",
            ) from None
        ba.apply_defaults()
        if ba.kwargs:
            raise COMError(
                hr.E_INVALIDARG,
                f"{self.interface.__name__}.{self.name}: keyword-only or **kwargs parameters "
                "cannot be marshalled; declare positional parameters",
            )
        return ba.args

    def __repr__(self) -> str:
        return f"<MethodSpec {self.interface.__name__}.{self.name}{self.signature}>"


def collect_methods(cls: type, own_names: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """The public functions defined in an interface class body."""
    return {
        name: value
        for name, value in own_names.items()
        if not name.startswith("_") and inspect.isfunction(value)
    }
