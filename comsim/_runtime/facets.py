"""The interfaces of a client call object obtained by QueryInterface (R19, R23, R28):
``ISynchronize`` and ``ICancelMethodCalls``, each sharing the call object's count (R25)."""

from __future__ import annotations

from typing import Any

from .._core import hresult as hr
from .._core import rules
from .._core.callobj import Input
from .._core.hresult import COMError
from .._core.text import safe_repr
from .cancel import cancel_call
from .comwait import WAIT_CAUSALITY
from .objects import ICancelMethodCalls, ISynchronize


class _Facet:
    """An interface of a call object obtained by QueryInterface: shares its count (R25)."""

    _com_kind_ = "facet"

    def __init__(self, owner: Any) -> None:  # a ``callobj.CallObject``
        self._owner = owner

    def QueryInterface(self, iface: type[Any]) -> Any:
        return self._owner.QueryInterface(iface)

    def AddRef(self) -> int:
        return self._owner.AddRef()

    def Release(self) -> int:
        return self._owner.Release()


class _SyncFacet(_Facet, ISynchronize):
    async def Wait(self, flags: int, milliseconds: int) -> int:
        """R23: S_OK once the call has ended, RPC_S_CALLPENDING on time-out (a COM wait, for
        the call object's call: with its causality id, R16).

        Raises:
            COMError(E_INVALIDARG): a negative time-out other than INFINITE.
        """
        owner = self._owner
        call = owner._call
        if call is None:
            return await owner._sync_event().Wait(flags, milliseconds)
        token = WAIT_CAUSALITY.set(call.causality_id)
        try:
            return await owner._sync_event().Wait(flags, milliseconds)
        finally:
            WAIT_CAUSALITY.reset(token)

    def Signal(self) -> int:
        return self._owner._sync_event().Signal()

    def Reset(self) -> int:
        return self._owner._sync_event().Reset()


class _CancelFacet(_Facet, ICancelMethodCalls):
    async def Cancel(self, seconds: float) -> int:
        """R28: cancel the call in progress; gives S_OK, RPC_E_CALL_COMPLETE or
        RPC_E_CALL_CANCELED. E_INVALIDARG for a negative time-out."""
        owner = self._owner
        try:
            timeout = rules.cancel_timeout(seconds)
        except ValueError as exc:
            raise COMError(hr.E_INVALIDARG, f"Cancel({safe_repr(seconds)}): {exc}") from None
        call = owner._call
        if call is None:
            return hr.RPC_E_CALL_COMPLETE
        apt = owner._check()
        return await cancel_call(apt, call, timeout)

    def TestCancel(self) -> int:
        """R28: RPC_S_CALLPENDING, RPC_E_CALL_CANCELED or RPC_E_CALL_COMPLETE."""
        return int(self._owner._machine.step(Input.TEST_CANCEL)[2] or 0)
