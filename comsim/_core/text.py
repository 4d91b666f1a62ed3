"""Text about the user's objects that never raises.

An error message names what failed: the exception a server method raised, the value a check
refused. Both are the user's objects, and their ``__str__`` or ``__repr__`` may raise
anything at all, ``SystemExit`` included. A boundary that formatted them plainly would fail
in its own error path (a call lost, an apartment's unit never ended), so every message that
shows an object of the user's goes through these functions: a method that raises stands in
for the text it could not give.
"""

from __future__ import annotations

from typing import Any


def _type_name(obj: Any) -> str:
    try:
        name = type(obj).__name__  # (a metaclass can make even this raise)
        return name if type(name) is str else "object"
    except BaseException:  # the boundary: nothing goes through
        return "object"


def _text(show: Any, obj: Any) -> str:
    text = show(obj)
    # a str subclass may override what a message does with it: a plain copy
    return text if type(text) is str else str.__str__(text)


def safe_str(obj: Any) -> str:
    """``str(obj)``, or ``<TypeName: str() raised ErrorType>`` when that raises (anything at
    all)."""
    try:
        return _text(str, obj)
    except BaseException as exc:  # the boundary: nothing goes through
        return f"<{_type_name(obj)}: str() raised {_type_name(exc)}>"


def safe_repr(obj: Any) -> str:
    """``repr(obj)``, or ``<TypeName: repr() raised ErrorType>`` when that raises (anything
    at all)."""
    try:
        return _text(repr, obj)
    except BaseException as exc:  # the boundary: nothing goes through
        return f"<{_type_name(obj)}: repr() raised {_type_name(exc)}>"


def describe(exc: BaseException) -> str:
    """An exception as a message shows it: ``"TypeName: its text"``, ``"TypeName"`` when its
    text is empty, ``"TypeName (its str() raised ErrorType)"`` when there is none to be had.
    Never raises."""
    name = _type_name(exc)
    try:
        text = _text(str, exc)
    except BaseException as error:  # the boundary: nothing goes through
        return f"{name} (its str() raised {_type_name(error)})"
    return f"{name}: {text}" if text else name
