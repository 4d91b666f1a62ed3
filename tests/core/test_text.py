"""``_core.text``: the text of a user's object, whatever its ``__str__`` or ``__repr__`` does."""

from __future__ import annotations

import pytest

from comsim._core.text import describe, safe_repr, safe_str


class Raises(Exception):
    def __str__(self) -> str:
        raise SystemExit("str")

    def __repr__(self) -> str:
        raise KeyboardInterrupt


class Odd(str):
    def __len__(self) -> int:
        raise RuntimeError("len")


class GivesOdd:
    def __str__(self) -> str:
        return Odd("odd")

    def __repr__(self) -> str:
        return Odd("odd repr")


def test_plain_objects_give_their_text() -> None:
    assert safe_str(ValueError("bad")) == "bad"
    assert safe_repr("x") == "'x'"
    assert describe(ValueError("bad")) == "ValueError: bad"
    assert describe(ValueError()) == "ValueError"


def test_a_raising_str_or_repr_stands_in_for_the_text() -> None:
    # even SystemExit and KeyboardInterrupt from the user's methods stay inside
    assert safe_str(Raises()) == "<Raises: str() raised SystemExit>"
    assert safe_repr(Raises()) == "<Raises: repr() raised KeyboardInterrupt>"
    assert describe(Raises()) == "Raises (its str() raised SystemExit)"


def test_a_str_subclass_is_copied_to_a_plain_str() -> None:
    assert type(safe_str(GivesOdd())) is str and safe_str(GivesOdd()) == "odd"
    assert type(safe_repr(GivesOdd())) is str and safe_repr(GivesOdd()) == "odd repr"


@pytest.mark.parametrize("show", [safe_str, safe_repr])
def test_long_text_is_kept_whole(show: object) -> None:
    # an outcome's message (``Raised``) is all of it: two long messages that differ only at
    # their ends are two outcomes
    text = show("x" * 1000 + "the end")  # type: ignore[operator]
    assert "x" * 1000 + "the end" in text
