"""R33's placement table in the core (``comsim._core.activation``): complete, and read the way
COM-RULES.md says. Synchronous tests; no event loop."""

from __future__ import annotations

import pytest

from comsim import ApartmentType, hresult
from comsim._core.activation import (
    MODELS,
    TABLE,
    Creator,
    Placement,
    class_status,
    creator_kind,
    place,
    result_is_object,
)


def test_every_cell_is_decided() -> None:
    # R33: one placement for every creator in an apartment and every threading model
    rows = [c for c in Creator if c is not Creator.NONE]
    assert set(TABLE) == {(c, m) for c in rows for m in MODELS}


def test_no_apartment_fails() -> None:
    # R33 (R4): from no apartment, CO_E_NOTINITIALIZED whatever the model
    for model in MODELS:
        assert place(Creator.NONE, model) == hresult.CO_E_NOTINITIALIZED


@pytest.mark.parametrize(("current", "under", "row"), [
    (None, None, Creator.NONE),
    (ApartmentType.STA, None, Creator.STA),
    (ApartmentType.MAINSTA, None, Creator.MAINSTA),
    (ApartmentType.MTA, None, Creator.MTA),
    (ApartmentType.NA, ApartmentType.STA, Creator.NA_ON_STA),
    (ApartmentType.NA, ApartmentType.MAINSTA, Creator.NA_ON_STA),
    (ApartmentType.NA, ApartmentType.MTA, Creator.NA_ELSEWHERE),
    (ApartmentType.NA, None, Creator.NA_ELSEWHERE),
])
def test_creator_rows(current: ApartmentType | None, under: ApartmentType | None,
                      row: Creator) -> None:
    # R33: the creator's row, the NA split by the thread under it
    assert creator_kind(current, under) is row


def test_rules_of_r33() -> None:
    # R33: "Both" the creator's own; "Free" the MTA; "Neutral" the NA; "Apartment" the
    # creator's STA, the host STA from the MTA, the STA under the NA; None the main STA
    for row in Creator:
        if row is Creator.NONE:
            continue
        assert place(row, "Both") is Placement.CREATOR
        in_mta = row is Creator.MTA
        in_na = row in (Creator.NA_ON_STA, Creator.NA_ELSEWHERE)
        assert place(row, "Free") is (Placement.CREATOR if in_mta else Placement.MTA)
        assert place(row, "Neutral") is (Placement.CREATOR if in_na else Placement.NA)
    assert place(Creator.STA, "Apartment") is Placement.CREATOR
    assert place(Creator.MTA, "Apartment") is Placement.HOST_STA
    assert place(Creator.NA_ON_STA, "Apartment") is Placement.THREAD_STA
    assert place(Creator.NA_ELSEWHERE, "Apartment") is Placement.HOST_STA
    assert place(Creator.MAINSTA, None) is Placement.CREATOR
    assert place(Creator.STA, None) is Placement.MAIN_STA
    assert result_is_object(True) and not result_is_object(False)


@pytest.mark.parametrize(("is_coclass", "model", "code"), [
    (True, "Apartment", hresult.S_OK), (True, "Free", hresult.S_OK),
    (True, "Both", hresult.S_OK), (True, "Neutral", hresult.S_OK), (True, None, hresult.S_OK),
    (True, "both", hresult.REGDB_E_CLASSNOTREG), (True, 1, hresult.REGDB_E_CLASSNOTREG),
    (True, ["Both"], hresult.REGDB_E_CLASSNOTREG), (False, "Both", hresult.REGDB_E_CLASSNOTREG),
])
def test_class_status(is_coclass: bool, model: object, code: int) -> None:
    # R33: REGDB_E_CLASSNOTREG for a non-CoClass or an unknown threading model
    assert class_status(is_coclass, model) == code
