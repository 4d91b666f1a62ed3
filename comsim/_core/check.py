"""Input validation at the public surface: a value is checked where it enters.

A bad argument raises ``COMError(E_INVALIDARG)`` naming the API, the argument and the value.
The error is also what Python would raise: a value of the wrong type gives ``BadArgumentType``
(a ``TypeError`` too), a value out of range ``BadArgumentValue`` (a ``ValueError`` too), so
``except TypeError`` and ``except COMError`` both catch it.
"""

from __future__ import annotations

import math
from typing import Any

from . import hresult as hr
from .hresult import COMError
from .text import safe_repr


class BadArgumentType(COMError, TypeError):
    """E_INVALIDARG: an argument of the wrong type."""

    def __init__(self, text: str) -> None:
        super().__init__(hr.E_INVALIDARG, text)

    def __reduce__(self) -> tuple[Any, ...]:  # it crosses processes (explore's workers)
        return (type(self), (self.text,))


class BadArgumentValue(COMError, ValueError):
    """E_INVALIDARG: an argument out of range."""

    def __init__(self, text: str) -> None:
        super().__init__(hr.E_INVALIDARG, text)

    def __reduce__(self) -> tuple[Any, ...]:  # it crosses processes (explore's workers)
        return (type(self), (self.text,))


class NoSuchMethod(COMError, AttributeError):
    """E_INVALIDARG: a method the interface does not declare (also an AttributeError, so that
    ``getattr(obj, name, default)`` and ``hasattr`` work)."""

    def __init__(self, text: str) -> None:
        super().__init__(hr.E_INVALIDARG, text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.text,))


def is_number(value: Any) -> bool:
    """An int or a float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_seconds(api: str, name: str, value: Any) -> float:
    """A finite number of seconds >= 0, as a float."""
    if not is_number(value):
        raise BadArgumentType(f"{api}: {name} must be a number of seconds, "
                              f"not {safe_repr(value)}")
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise BadArgumentValue(f"{api}: {name} must be a finite number >= 0, "
                               f"not {safe_repr(value)}")
    return float(value)


def check_probability(api: str, name: str, value: Any) -> float:
    """A number in [0, 1]."""
    if not is_number(value):
        raise BadArgumentType(f"{api}: {name} must be a number, not {safe_repr(value)}")
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise BadArgumentValue(f"{api}: {name} must be between 0 and 1, not {safe_repr(value)}")
    return float(value)


def check_name(api: str, name: str, value: Any) -> str:
    """A non-empty str."""
    if not isinstance(value, str):
        raise BadArgumentType(f"{api}: {name} must be a str, not {safe_repr(value)}")
    if not value:
        raise BadArgumentValue(f"{api}: {name} must not be empty")
    return value
