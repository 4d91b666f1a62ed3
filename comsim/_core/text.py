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

#: the longest text shown for one object: a message stays readable whatever the object says
LIMIT = 300


def _type_name(obj: Any) -> str:
    try:
        name = type(obj).__name__  # (a metaclass can make even this raise)
        return name if type(name) is str else "object"
    except BaseException:  # the boundary: nothing goes through
        return "object"


def _clip(text: str) -> str:
    return text if len(text) <= LIMIT else text[:LIMIT - 3] + "..."


def safe_str(obj: Any) -> str:
    """``str(obj)``, or ``<TypeName: str() raised ErrorType>`` when that raises (anything at
    all); at most ``LIMIT`` characters."""
    try:
        text = str(obj)
        if type(text) is not str:  # a str subclass whose methods may raise in turn
            text = str.__str__(text)
    except BaseException as exc:  # the boundary: nothing goes through
        return f"<{_type_name(obj)}: str() raised {_type_name(exc)}>"
    return _clip(text)


def safe_repr(obj: Any) -> str:
    """``repr(obj)``, or ``<TypeName: repr() raised ErrorType>`` when that raises (anything
    at all); at most ``LIMIT`` characters."""
    try:
        text = repr(obj)
        if type(text) is not str:
            text = str.__str__(text)
    except BaseException as exc:  # the boundary: nothing goes through
        return f"<{_type_name(obj)}: repr() raised {_type_name(exc)}>"
    return _clip(text)


def describe(exc: BaseException) -> str:
    """An exception as a message shows it: ``"TypeName: its text"``, ``"TypeName"`` when its
    text is empty, ``"TypeName (its str() raised ErrorType)"`` when there is none to be had.
    Never raises."""
    name = _type_name(exc)
    try:
        text = str(exc)
        if type(text) is not str:
            text = str.__str__(text)
    except BaseException as error:  # the boundary: nothing goes through
        return f"{name} (its str() raised {_type_name(error)})"
    return f"{name}: {_clip(text)}" if text else name
