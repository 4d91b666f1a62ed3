"""Arguments and results cross apartments by value (R11).

Values are copied by pickling. Every ``CoClass`` instance and proxy inside a value, at any
depth, becomes an object reference; on the receiving side each reference becomes a proxy bound
to the receiving apartment, or the object itself at home. Free-threaded objects (``StdEvent``,
``ManualResetEvent``) pass by reference. Plain immutable scalars need no copy and skip pickle.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core import hresult as hr
from .._core.hresult import COMError

if TYPE_CHECKING:
    from .apartment import Apartment

_SCALARS = frozenset({int, float, str, bytes, bool, type(None), complex})
#: the types ``pack`` passes through as they are (immutable; no copy)
SCALARS = _SCALARS


class Packed:
    """A value ready to cross: pickled bytes and the references found inside."""

    __slots__ = ("data", "refs")

    def __init__(self, data: bytes, refs: list[Any]) -> None:
        self.data = data
        self.refs = refs


class _Pickler(pickle.Pickler):
    def __init__(self, buf: io.BytesIO) -> None:
        super().__init__(buf, protocol=pickle.HIGHEST_PROTOCOL)
        self.refs: list[Any] = []

    def persistent_id(self, obj: Any) -> Any:
        ref = _reference_for(obj)
        if ref is None:
            return None
        self.refs.append(ref)
        return len(self.refs) - 1


class _Unpickler(pickle.Unpickler):
    def __init__(self, buf: io.BytesIO, refs: list[Any], apartment: Apartment) -> None:
        super().__init__(buf)
        self._refs = refs
        self._apartment = apartment
        self.resolved: set[int] = set()

    def persistent_load(self, pid: Any) -> Any:
        self.resolved.add(pid)
        return _resolve(self._refs[pid], self._apartment)


def pack(value: Any, what: str) -> Any:
    """``value`` ready to cross; ``COMError(RPC_X_BAD_STUB_DATA)`` if it cannot be copied."""
    if type(value) in _SCALARS:
        return value
    if type(value) is tuple:
        for v in value:
            if type(v) not in _SCALARS:
                break
        else:
            return value  # immutable all the way down: nothing to copy
    buf = io.BytesIO()
    p = _Pickler(buf)
    try:
        p.dump(value)
    except BaseException as exc:
        for ref in p.refs:  # R7: references taken for a value that will never cross
            _release(ref)
        if isinstance(exc, COMError) or not isinstance(exc, Exception):
            raise
        raise COMError(
            hr.RPC_X_BAD_STUB_DATA,
            f"{what} cannot be marshalled by value ({type(exc).__name__}: {exc}); pass "
            "picklable data, COM objects or proxies",
        ) from exc
    return Packed(buf.getvalue(), p.refs)


def unpack(value: Any, apartment: Apartment, what: str = "a value") -> Any:
    """The receiving apartment's copy of a packed value.

    Raises:
        COMError(RPC_X_BAD_STUB_DATA): the value pickled but does not unpickle (R11): its
            ``__reduce__`` or ``__setstate__`` fails on the receiving side.
        COMError: what resolving an object reference inside it raises (R17, R18).
    """
    if type(value) is not Packed:
        return value
    up = _Unpickler(io.BytesIO(value.data), value.refs, apartment)
    try:
        return up.load()
    except COMError:
        raise
    except Exception as exc:
        raise COMError(
            hr.RPC_X_BAD_STUB_DATA,
            f"{what} could not be unmarshalled in apartment {apartment.name!r} "
            f"({type(exc).__name__}: {exc}); its pickling hooks must rebuild it",
        ) from exc
    finally:
        for i, ref in enumerate(value.refs):  # R7: references the value did not bring in
            if i not in up.resolved:
                _release(ref)


def discard(value: Any) -> None:
    """R7: ``value`` will never be unpacked (its message was dropped: a reply nobody takes, a
    request that never runs): the references inside it are released, as COM's RPC runtime
    releases the marshalled interface pointers of a discarded message. Releasing twice, or
    after the value was unpacked, does nothing (``_core.marshaldata.TABLE``)."""
    if type(value) is Packed:
        for ref in value.refs:
            _release(ref)


# object references: ``objref``, which knows stubs and proxies, installs its two functions here
# (``install``), so that this module needs nothing above it
def _not_installed(*_args: Any) -> Any:
    raise RuntimeError("comsim's object references are not installed: import comsim first")


_reference_for: Callable[[Any], Any] = _not_installed
_resolve: Callable[[Any, Any], Any] = _not_installed
_release: Callable[[Any], None] = _not_installed


def install(reference_for: Callable[[Any], Any], resolve: Callable[[Any, Any], Any],
            release: Callable[[Any], None]) -> None:
    """How objects inside values cross (R11): ``reference_for(obj)`` gives the reference that
    stands for ``obj`` (None: copy it by value); ``resolve(ref, apartment)`` the receiving
    apartment's object for a reference; ``release(ref)`` lets go of a reference that will
    never be resolved (R7)."""
    global _reference_for, _resolve, _release
    _reference_for, _resolve, _release = reference_for, resolve, release
