"""Arguments and results cross apartments by value (R11).

Values are copied by pickling. Every ``CoClass`` instance and proxy inside a value, at any
depth, becomes an object reference; on the receiving side each reference becomes a proxy bound
to the receiving apartment, or the object itself at home. Free-threaded objects (``StdEvent``,
``ManualResetEvent``) pass by reference. Plain immutable scalars need no copy and skip pickle.

Pickling hooks (``__reduce__``, ``__setstate__``, a reconstructor) are user code: whatever they
raise, ``SystemExit``, ``KeyboardInterrupt`` and ``CancelledError`` included, fails the value
with ``RPC_X_BAD_STUB_DATA`` (R11; the fault boundary, ``boundary``). They run synchronously,
so no cancellation of the task can arrive inside them: a ``CancelledError`` raised there is the
hook's own, and a cancel of the task still comes at its next ``await``.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core import hresult as hr
from .._core.hresult import COMError
from .._core.text import describe
from .boundary import own_ref
from .objects import free_threaded

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


_FAILED = object()  # a reference whose resolving raised: it brought nothing in


class _Unpickler(pickle.Unpickler):
    def __init__(self, buf: io.BytesIO, refs: list[Any], apartment: Apartment) -> None:
        super().__init__(buf)
        self._refs = refs
        self._apartment = apartment
        #: index of each reference resolved (its data is consumed) -> what it brought in
        self.brought: dict[int, Any] = {}

    def persistent_load(self, pid: Any) -> Any:
        self.brought[pid] = _FAILED  # consumed even if resolving raises (R9): not released
        value = self.brought[pid] = _resolve(self._refs[pid], self._apartment)
        return value

    def let_go(self) -> None:
        """R7: the value will not arrive, so what its references brought in is released: each
        holds one count (the object itself at home, ``AddRef``-ed; a proxy, one count on its
        manager, R34) but a free-threaded object, passed by reference, which holds none."""
        for value in self.brought.values():
            if value is not _FAILED and not free_threaded(value):
                own_ref(value, "Release")


def pack(value: Any, what: str) -> Any:
    """``value`` ready to cross (R11). On failure the references already taken for it are
    released (R7).

    Raises:
        COMError(RPC_X_BAD_STUB_DATA): ``pickle`` refuses the value, or a pickling hook of it
            raises anything but a COMError (``SystemExit`` too: the fault boundary).
        COMError: a COMError raised inside, as it is: a released proxy (CO_E_OBJNOTCONNECTED,
            R34) or one to a disconnected object (RPC_E_DISCONNECTED, R17), or a hook's own.
    """
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
        if isinstance(exc, COMError):
            raise
        raise COMError(
            hr.RPC_X_BAD_STUB_DATA,
            f"{what} cannot be marshalled by value ({describe(exc)}); pass "
            "picklable data, COM objects or proxies",
        ) from exc
    return Packed(buf.getvalue(), p.refs)


def unpack(value: Any, apartment: Apartment, what: str = "a value") -> Any:
    """The receiving apartment's copy of a packed value. On failure nothing of it stays: the
    references it did not resolve are released, and what those it resolved brought in (R7).

    Raises:
        COMError(RPC_X_BAD_STUB_DATA): the value pickled but does not unpickle (R11): its
            ``__reduce__`` or ``__setstate__`` fails on the receiving side, whatever it raises
            but a COMError (``SystemExit`` too: the fault boundary).
        COMError: a COMError raised inside, as it is: what resolving an object reference
            raises (CO_E_OBJNOTCONNECTED, R17, R18), or a hook's own.
    """
    if type(value) is not Packed:
        return value
    up = _Unpickler(io.BytesIO(value.data), value.refs, apartment)
    try:
        return up.load()
    except BaseException as exc:
        up.let_go()
        if isinstance(exc, COMError):
            raise
        raise COMError(
            hr.RPC_X_BAD_STUB_DATA,
            f"{what} could not be unmarshalled in apartment {apartment.name!r} "
            f"({describe(exc)}); its pickling hooks must rebuild it",
        ) from exc
    finally:
        for i, ref in enumerate(value.refs):  # R7: references the value did not bring in
            if i not in up.brought:
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
