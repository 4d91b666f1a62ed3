"""Activation (R33): where ``CoCreateInstance`` places an object, as one table.

``TABLE[creator, model]`` is the placement: which apartment runs ``cls()``. The runtime carries
it out (``comsim._runtime.activation``): it finds or makes that apartment, runs the
constructor there, and gives the creator the object itself when the placement is the
creator's own apartment, else a proxy. Plain values only; no side effects.
"""

from __future__ import annotations

import enum
from typing import Final

from . import hresult as hr
from .constants import ApartmentType

#: the threading models a class may declare (``CoClass.threading_model``); None is the legacy
#: model (no ThreadingModel value in the registry)
MODELS: Final = ("Apartment", "Free", "Both", "Neutral", None)


class Creator(enum.Enum):
    """Where the code that calls ``CoCreateInstance`` runs."""

    STA = "an STA"
    MAINSTA = "the main STA"
    MTA = "the MTA"
    NA_ON_STA = "the NA, on an STA's thread"
    NA_ELSEWHERE = "the NA, on the MTA's or no apartment's thread"
    NONE = "no apartment"


class Placement(enum.Enum):
    """The apartment that constructs the object."""

    CREATOR = "the creator's apartment"
    MTA = "the MTA"
    NA = "the NA"
    MAIN_STA = "the main STA (the host STA, made the main STA, when no STA exists)"
    HOST_STA = "the host STA"
    THREAD_STA = "the STA whose thread is in the NA"


_C, _P = Creator, Placement

#: creator x threading model -> placement (R33). ``Creator.NONE`` has no row: activation from
#: no apartment fails with CO_E_NOTINITIALIZED before the table is asked.
TABLE: Final[dict[tuple[Creator, str | None], Placement]] = {
    (_C.STA, "Apartment"): _P.CREATOR,
    (_C.STA, "Free"): _P.MTA,
    (_C.STA, "Both"): _P.CREATOR,
    (_C.STA, "Neutral"): _P.NA,
    (_C.STA, None): _P.MAIN_STA,
    (_C.MAINSTA, "Apartment"): _P.CREATOR,
    (_C.MAINSTA, "Free"): _P.MTA,
    (_C.MAINSTA, "Both"): _P.CREATOR,
    (_C.MAINSTA, "Neutral"): _P.NA,
    (_C.MAINSTA, None): _P.CREATOR,
    (_C.MTA, "Apartment"): _P.HOST_STA,
    (_C.MTA, "Free"): _P.CREATOR,
    (_C.MTA, "Both"): _P.CREATOR,
    (_C.MTA, "Neutral"): _P.NA,
    (_C.MTA, None): _P.MAIN_STA,
    (_C.NA_ON_STA, "Apartment"): _P.THREAD_STA,
    (_C.NA_ON_STA, "Free"): _P.MTA,
    (_C.NA_ON_STA, "Both"): _P.CREATOR,
    (_C.NA_ON_STA, "Neutral"): _P.CREATOR,
    (_C.NA_ON_STA, None): _P.MAIN_STA,
    (_C.NA_ELSEWHERE, "Apartment"): _P.HOST_STA,
    (_C.NA_ELSEWHERE, "Free"): _P.MTA,
    (_C.NA_ELSEWHERE, "Both"): _P.CREATOR,
    (_C.NA_ELSEWHERE, "Neutral"): _P.CREATOR,
    (_C.NA_ELSEWHERE, None): _P.MAIN_STA,
}


def creator_kind(current: ApartmentType | None, under: ApartmentType | None) -> Creator:
    """The creator's row: ``current`` is the caller's apartment type (None: no apartment);
    ``under``, for code in the NA, the type of the apartment whose thread is in it (None: the
    NA was entered from no apartment)."""
    if current is None:
        return Creator.NONE
    if current is ApartmentType.NA:
        return Creator.NA_ON_STA if under is not None and under.is_sta else Creator.NA_ELSEWHERE
    if current is ApartmentType.MAINSTA:
        return Creator.MAINSTA
    if current is ApartmentType.STA:
        return Creator.STA
    return Creator.MTA


def class_status(is_coclass: bool, model: object) -> int:
    """R33: a class ``CoCreateInstance`` can activate: a ``CoClass`` subclass whose
    ``threading_model`` is one of ``MODELS``; else REGDB_E_CLASSNOTREG."""
    if not is_coclass or not isinstance(model, str | None) or model not in MODELS:
        return hr.REGDB_E_CLASSNOTREG
    return hr.S_OK


def place(creator: Creator, model: str | None) -> Placement | int:
    """R33: where the object goes, or the HRESULT activation fails with (CO_E_NOTINITIALIZED
    from no apartment)."""
    if creator is Creator.NONE:
        return hr.CO_E_NOTINITIALIZED
    return TABLE[creator, model]


def result_is_object(target_is_creator: bool) -> bool:
    """R33: the creator gets the object itself when it was placed in the creator's own
    apartment, else a proxy bound there."""
    return target_is_creator
