"""COM enumerations and constants (plain values, no behaviour)."""

from __future__ import annotations

import enum


class ApartmentType(enum.Enum):
    """The kind of an apartment, as ``CoGetApartmentType`` reports it."""

    STA = "STA"
    MAINSTA = "MAINSTA"
    MTA = "MTA"
    #: the neutral apartment (R5): no thread of its own; code enters it on the caller's thread
    NA = "NA"

    @property
    def is_sta(self) -> bool:
        value = self._value_  # (reading ``ApartmentType.STA`` costs an enum class hook)
        return value == "STA" or value == "MAINSTA"


class MSHLFLAGS(enum.IntEnum):
    """How marshal data may be unmarshalled (R6, R7)."""

    NORMAL = 0
    TABLESTRONG = 1
    TABLEWEAK = 2


INFINITE = 0xFFFFFFFF
RPC_C_CANCEL_INFINITE_TIMEOUT = 0xFFFFFFFF

SERVERCALL_ISHANDLED = 0
SERVERCALL_REJECTED = 1
SERVERCALL_RETRYLATER = 2

PENDINGMSG_CANCELCALL = 0
PENDINGMSG_WAITNOPROCESS = 1
PENDINGMSG_WAITDEFPROCESS = 2

PENDINGTYPE_TOPLEVEL = 1
PENDINGTYPE_NESTED = 2

CALLTYPE_TOPLEVEL = 1
CALLTYPE_NESTED = 2
CALLTYPE_ASYNC = 3
CALLTYPE_TOPLEVEL_CALLPENDING = 4
CALLTYPE_ASYNC_CALLPENDING = 5
