"""One COM reference count (R25): the one implementation every comsim object uses.

``AddRef`` adds one and ``Release`` takes one, never below 0; both give the new count. Whether
``AddRef`` on a count that reached 0 brings it back is the object's choice: objects at home,
proxies and events come back (``revives``, today's comsim), a call object stays released.
"""

from __future__ import annotations


class RefCount:
    """A reference count shared by every interface of one object (R25)."""

    __slots__ = ("count", "revives")

    def __init__(self, count: int = 1, *, revives: bool = True) -> None:
        self.count = count
        self.revives = revives

    def add(self) -> int:
        """AddRef: the new count (0, and no change, for a released count that stays so)."""
        if self.count <= 0 and not self.revives:
            return 0
        self.count += 1
        return self.count

    def release(self) -> int:
        """Release: the new count, never below 0."""
        if self.count > 0:
            self.count -= 1
        return self.count

    def __repr__(self) -> str:
        return f"<RefCount {self.count}>"
