"""comsim: Microsoft COM's cross-apartment calls, asynchronous calls and cancellation,
simulated on asyncio.

See README.md for a tour; ``comsim.hresult`` holds the HRESULT codes.
"""

from __future__ import annotations

from . import (
    hresult,
    testing,
)
from ._api import (
    CoGetApartmentType,
    CoRegisterMessageFilter,
    current_apartment,
    current_causality_id,
)
from ._core.constants import (
    CALLTYPE_ASYNC,
    CALLTYPE_ASYNC_CALLPENDING,
    CALLTYPE_NESTED,
    CALLTYPE_TOPLEVEL,
    CALLTYPE_TOPLEVEL_CALLPENDING,
    INFINITE,
    MSHLFLAGS,
    PENDINGMSG_CANCELCALL,
    PENDINGMSG_WAITDEFPROCESS,
    PENDINGMSG_WAITNOPROCESS,
    PENDINGTYPE_NESTED,
    PENDINGTYPE_TOPLEVEL,
    RPC_C_CANCEL_INFINITE_TIMEOUT,
    SERVERCALL_ISHANDLED,
    SERVERCALL_REJECTED,
    SERVERCALL_RETRYLATER,
    ApartmentType,
)
from ._core.hresult import COMError
from ._helpers import PendingCall, begin
from ._runtime.activation import CoCreateInstance
from ._runtime.apartment import Apartment
from ._runtime.callobj import CallObject, ServerCall
from ._runtime.cofuncs import (
    CoCancelCall,
    CoDisableCallCancellation,
    CoEnableCallCancellation,
    CoTestCancel,
    current_thread_id,
)
from ._runtime.events import ManualResetEvent, StdEvent
from ._runtime.objects import (
    CoClass,
    ICallFactory,
    ICancelMethodCalls,
    IMessageFilter,
    Interface,
    ISynchronize,
    IUnknown,
    async_interface,
)
from ._runtime.objref import (
    CoDisconnectObject,
    GlobalInterfaceTable,
    MarshalStream,
    marshal_interface,
    release_marshal_data,
    unmarshal_interface,
)
from ._runtime.proxy import Proxy
from ._runtime.runtime import Runtime

__version__ = "0.1.0"

__all__ = [
    "CALLTYPE_ASYNC",
    "CALLTYPE_ASYNC_CALLPENDING",
    "CALLTYPE_NESTED",
    "CALLTYPE_TOPLEVEL",
    "CALLTYPE_TOPLEVEL_CALLPENDING",
    "INFINITE",
    "MSHLFLAGS",
    "PENDINGMSG_CANCELCALL",
    "PENDINGMSG_WAITDEFPROCESS",
    "PENDINGMSG_WAITNOPROCESS",
    "PENDINGTYPE_NESTED",
    "PENDINGTYPE_TOPLEVEL",
    "RPC_C_CANCEL_INFINITE_TIMEOUT",
    "SERVERCALL_ISHANDLED",
    "SERVERCALL_REJECTED",
    "SERVERCALL_RETRYLATER",
    "Apartment",
    "ApartmentType",
    "COMError",
    "CallObject",
    "CoCancelCall",
    "CoClass",
    "CoCreateInstance",
    "CoDisableCallCancellation",
    "CoDisconnectObject",
    "CoEnableCallCancellation",
    "CoGetApartmentType",
    "CoRegisterMessageFilter",
    "CoTestCancel",
    "GlobalInterfaceTable",
    "ICallFactory",
    "ICancelMethodCalls",
    "IMessageFilter",
    "ISynchronize",
    "IUnknown",
    "Interface",
    "ManualResetEvent",
    "MarshalStream",
    "PendingCall",
    "Proxy",
    "Runtime",
    "ServerCall",
    "StdEvent",
    "async_interface",
    "begin",
    "current_apartment",
    "current_causality_id",
    "current_thread_id",
    "hresult",
    "marshal_interface",
    "release_marshal_data",
    "testing",
    "unmarshal_interface",
]
