"""HRESULT constants and COMError (comsim.hresult, comsim._core.hresult).

The codes are those of the table at the end of COM-RULES.md. Synchronous tests; no event loop.
"""

from __future__ import annotations

import copy
import pickle

import pytest

import comsim
from comsim import hresult
from comsim._core import hresult as core_hr

# name -> unsigned value, from COM-RULES.md's table (and its list of reserved codes)
TABLE = {
    "S_OK": 0x00000000,
    "S_FALSE": 0x00000001,
    "E_NOINTERFACE": 0x80004002,
    "E_FAIL": 0x80004005,
    "E_INVALIDARG": 0x80070057,
    "CO_E_NOT_SUPPORTED": 0x80004021,
    "RPC_E_CALL_REJECTED": 0x80010001,
    "RPC_E_CALL_CANCELED": 0x80010002,
    "RPC_E_SERVERFAULT": 0x80010105,
    "RPC_E_DISCONNECTED": 0x80010108,
    "RPC_E_WRONG_THREAD": 0x8001010E,
    "RPC_S_CALLPENDING": 0x80010115,
    "RPC_E_CALL_PENDING": 0x80010115,
    "RPC_E_CALL_COMPLETE": 0x80010117,
    "CO_E_CANCEL_DISABLED": 0x80010140,
    "CO_E_NOTINITIALIZED": 0x800401F0,
    "CO_E_OBJNOTREG": 0x800401FB,
    "CO_E_OBJNOTCONNECTED": 0x800401FD,
    "RPC_X_BAD_STUB_DATA": 0x800706F7,
    # reserved
    "RPC_E_CHANGED_MODE": 0x80010106,
    "RPC_E_SERVERCALL_RETRYLATER": 0x8001010A,
    "RPC_E_SERVERCALL_REJECTED": 0x8001010B,
    "RPC_E_TIMEOUT": 0x8001011F,
    "RPC_E_NO_SYNC": 0x80010120,
}


def signed(v: int) -> int:
    return v - 0x1_0000_0000 if v & 0x8000_0000 else v


@pytest.mark.parametrize("code", list(TABLE))
def test_value_is_signed_int(code: str) -> None:  # HRESULT table
    v = getattr(hresult, code)
    assert type(v) is int
    assert v == signed(TABLE[code])
    assert -(2**31) <= v < 2**31
    assert getattr(core_hr, code) == v


@pytest.mark.parametrize("code", list(TABLE))
def test_name_round_trips(code: str) -> None:  # HRESULT table
    expected = "RPC_S_CALLPENDING" if code == "RPC_E_CALL_PENDING" else code
    assert hresult.name(getattr(hresult, code)) == expected
    assert hresult.name(TABLE[code]) == expected  # the unsigned form too


def test_name_of_callpending() -> None:  # R21 R23
    assert hresult.name(0x80010115) == "RPC_S_CALLPENDING"
    assert hresult.name(hresult.RPC_E_CALL_PENDING) == "RPC_S_CALLPENDING"
    assert hresult.RPC_E_CALL_PENDING == hresult.RPC_S_CALLPENDING


def test_name_of_unknown_code_is_hex() -> None:  # HRESULT table
    assert hresult.name(0x80041234) == "0x80041234"
    assert hresult.name(signed(0x80041234)) == "0x80041234"


def test_all_exports_exist() -> None:  # HRESULT table
    for n in hresult.__all__:
        assert hasattr(hresult, n), n
    for code in TABLE:
        assert code in hresult.__all__


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (hresult.S_OK, True),
        (hresult.S_FALSE, True),
        (0x7FFFFFFF, True),
        (hresult.E_FAIL, False),
        (0x80004005, False),  # unsigned form
        (hresult.RPC_S_CALLPENDING, False),
        (hresult.RPC_E_CALL_CANCELED, False),
        (-1, False),
    ],
)
def test_succeeded_failed(value: int, ok: bool) -> None:  # HRESULT table
    assert hresult.succeeded(value) is ok
    assert hresult.failed(value) is (not ok)


def test_unsigned() -> None:  # HRESULT table
    assert hresult.unsigned(hresult.RPC_E_CALL_CANCELED) == 0x80010002
    assert hresult.unsigned(0x80010002) == 0x80010002
    assert hresult.unsigned(hresult.S_FALSE) == 1


# --- COMError --------------------------------------------------------------------------------


def test_comerror_is_exported_and_an_exception() -> None:  # R14
    assert comsim.COMError is core_hr.COMError
    assert issubclass(comsim.COMError, Exception)


def test_comerror_hresult_is_signed() -> None:  # R14
    assert comsim.COMError(0x80010002).hresult == signed(0x80010002)
    assert comsim.COMError(hresult.RPC_E_CALL_CANCELED).hresult == hresult.RPC_E_CALL_CANCELED
    assert comsim.COMError(hresult.RPC_E_CALL_CANCELED).hresult < 0


def test_comerror_str_shows_name_and_unsigned_hex() -> None:  # R14
    e = comsim.COMError(hresult.RPC_E_CALL_CANCELED, "it was cancelled")
    assert str(e).startswith("RPC_E_CALL_CANCELED (0x80010002)")
    assert "it was cancelled" in str(e)
    assert e.text == "it was cancelled"


def test_comerror_str_without_text() -> None:  # R14
    e = comsim.COMError(hresult.CO_E_OBJNOTCONNECTED)
    assert str(e).startswith("CO_E_OBJNOTCONNECTED (0x800401FD)")
    e = comsim.COMError(0x80041234, "")
    assert str(e) == "0x80041234 (0x80041234)"


def test_comerror_str_uppercase_hex_8_digits() -> None:  # R14
    e = comsim.COMError(hresult.RPC_E_WRONG_THREAD)
    assert "(0x8001010E)" in str(e)


def test_comerror_details() -> None:  # R14
    e = comsim.COMError(hresult.E_FAIL, "x", details={"k": 1})
    assert e.details == {"k": 1}
    assert comsim.COMError(hresult.E_FAIL).details is None


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
def test_comerror_pickles(proto: int) -> None:  # R11 R14: errors cross apartments by pickling
    e = comsim.COMError(hresult.RPC_E_CALL_CANCELED, "cancelled while running")
    e2 = pickle.loads(pickle.dumps(e, protocol=proto))
    assert type(e2) is comsim.COMError
    assert e2.hresult == hresult.RPC_E_CALL_CANCELED
    assert e2.text == "cancelled while running"
    assert str(e2) == str(e)


def test_comerror_with_unpicklable_details_still_pickles() -> None:  # R11 R14
    import threading

    e = comsim.COMError(hresult.E_FAIL, "t", details=threading.Lock())
    e2 = pickle.loads(pickle.dumps(e))
    assert e2.hresult == hresult.E_FAIL
    assert e2.text == "t"


def test_comerror_subclass_pickles() -> None:  # R14
    e = _MyError(hresult.E_INVALIDARG, "bad")
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is _MyError
    assert e2.hresult == hresult.E_INVALIDARG


def test_bad_argument_errors_pickle_and_copy() -> None:  # R14: they cross to explore's workers
    from comsim._core.check import BadArgumentType, BadArgumentValue

    for cls in (BadArgumentType, BadArgumentValue):
        e2 = pickle.loads(pickle.dumps(cls("explore: seeds must be ints")))
        assert type(e2) is cls and e2.hresult == hresult.E_INVALIDARG
        assert e2.text == "explore: seeds must be ints"
        assert copy.copy(e2).text == e2.text


def test_comerror_copies() -> None:  # R14
    e = comsim.COMError(hresult.E_NOINTERFACE, "no")
    e2 = copy.copy(e)
    assert e2.hresult == e.hresult and str(e2) == str(e)


class _MyError(comsim.COMError):
    pass
