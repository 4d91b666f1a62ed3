"""Pythonic conveniences on top of COM's names (never instead of them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from ._core import hresult as hr
from ._core.hresult import COMError
from ._core.text import safe_repr
from ._runtime.objects import ICallFactory, ICancelMethodCalls, ISynchronize, async_interface
from ._runtime.proxy import Proxy


class PendingCall:
    """An asynchronous call begun by :func:`begin`: ``finish()``, ``cancel()``, ``wait()``.

    ``call`` is the COM call object itself, for anything else.
    """

    def __init__(self, call: Any, method: str) -> None:
        self.call = call
        self.method = method
        self.finished = False
        self._value: Any = None
        self._error: BaseException | None = None

    async def finish(self) -> Any:
        """``Finish_M``: the result, or the failure raised (R22). Once; later calls give the
        same result."""
        if not self.finished:
            try:
                self._value = await getattr(self.call, "Finish_" + self.method)()
            except BaseException as exc:
                self._error = exc
                raise
            finally:
                self.finished = True  # Finish_ has run: the call object is idle (R22, R32)
        if self._error is not None:
            raise self._error
        return self._value

    async def cancel(self, seconds: float = 0) -> int:
        """``ICancelMethodCalls::Cancel(seconds)`` (R28); ``finish()`` is still owed."""
        cancel = self.call.QueryInterface(ICancelMethodCalls)
        try:
            return int(await cancel.Cancel(seconds))
        finally:
            cancel.Release()

    async def wait(self, milliseconds: int = 0xFFFFFFFF) -> int:
        """``ISynchronize::Wait(0, milliseconds)``: S_OK once the call has ended, else
        RPC_S_CALLPENDING (R23)."""
        sync = self.call.QueryInterface(ISynchronize)
        try:
            return int(await sync.Wait(0, milliseconds))
        finally:
            sync.Release()


@asynccontextmanager
async def begin(method: Callable[..., Any], *args: Any, outer: Any = None
                ) -> AsyncIterator[PendingCall]:
    """Begin an asynchronous call and guarantee ``Finish_`` on the way out::

        async with comsim.begin(proxy.Work, 5.0) as call:
            ...                              # the call runs meanwhile
            result = await call.finish()     # Finish_Work

    ``method`` is a bound method of a proxy. If the body raises or is cancelled before
    ``finish()``, the call is cancelled (``Cancel(0)``) and ``Finish_`` still runs, shielded,
    so COM's rule holds; its ``RPC_E_CALL_CANCELED`` is swallowed and the body's exception
    propagates. A body that ends normally without ``finish()`` waits for the call and raises
    its failure, if any. The call object is released at the end.

    Raises:
        COMError(E_INVALIDARG): ``method`` is not a method of a proxy, or is one of IUnknown's
            (``AddRef``, ``QueryInterface``, ``Release``).
        Whatever ``Begin_`` raises (E_INVALIDARG for arguments that do not bind, ...).
    """
    proxy = getattr(method, "__self__", None)
    name = getattr(method, "__name__", None)
    if not isinstance(proxy, Proxy) or not isinstance(name, str):
        raise COMError(hr.E_INVALIDARG, f"begin() takes a proxy's method, e.g. "
                                        f"begin(proxy.Work, ...), not {safe_repr(method)}")
    iface = next((i for i in type(proxy).__mro__ if name in getattr(i, "_com_methods_", {})
                  and i.__dict__.get("_com_is_interface_") is True), None)
    if iface is None:  # IUnknown's AddRef, QueryInterface, Release: no call object has them
        raise COMError(hr.E_INVALIDARG, f"begin() takes a method of one of the proxy's "
                                        f"interfaces, not {name}: IUnknown's methods are not "
                                        f"called asynchronously (call proxy.{name}() itself)")
    factory = proxy.QueryInterface(ICallFactory)
    try:
        call = factory.CreateCall(async_interface(iface), outer=outer)
    finally:
        factory.Release()
    getattr(call, "Begin_" + name)(*args)
    pending = PendingCall(call, name)
    try:
        yield pending
    except BaseException:
        if not pending.finished:
            with anyio.CancelScope(shield=True):  # COM's rule: Finish_ is owed, whatever
                await _cancel_and_finish(pending)
        raise
    else:
        if not pending.finished:
            await pending.finish()
    finally:
        call.Release()


async def _cancel_and_finish(pending: PendingCall) -> None:
    await pending.cancel(0)
    try:
        await pending.finish()
    except COMError:
        pass  # RPC_E_CALL_CANCELED or the call's own failure: the body's exception wins
