"""The in-process record cache in front of Redis: bounded, LRU, short TTL.

Entries are keyed by the Redis key they came from (``lh:d:{host}``, ``lh:l:{host}:{path}``),
so a change announcement (whose message is exactly that key) drops the right entry. A
``None`` value is a remembered miss (negative entry), kept for its own, longer TTL.

An invalidation is remembered (per key, for ``_REMEMBER_INVALIDATIONS`` seconds): a lookup
notes when it started (:meth:`stamp`) and its answer is stored only when its key was not
invalidated since, so an answer fetched just before a change can never be cached after
the change was announced. Invalidations of other keys do not hold it back.
"""

from __future__ import annotations

from collections import OrderedDict
from enum import Enum
from time import monotonic
from typing import Final, Generic, TypeVar

V = TypeVar("V")


class Missing(Enum):
    """What :meth:`RecordCache.peek` answers for a key it does not hold (None is a
    remembered miss). An enum member, so that ``is MISSING`` narrows the type."""

    MISSING = "missing"


MISSING: Final = Missing.MISSING

# Longer than any lookup can take (Redis and Postgres waits are bounded well below it).
_REMEMBER_INVALIDATIONS = 30.0


class RecordCache(Generic[V]):
    def __init__(self, maxsize: int, ttl: float, negative_ttl: float) -> None:
        self._data: OrderedDict[str, tuple[float, V | None]] = OrderedDict()
        self._maxsize = maxsize
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._invalidated: OrderedDict[str, float] = OrderedDict()
        self._cleared_at = float("-inf")

    @staticmethod
    def stamp() -> float:
        return monotonic()

    def get(self, key: str) -> tuple[bool, V | None]:
        """(found, value); value None with found True is a remembered miss."""
        value = self.peek(key)
        return (False, None) if value is MISSING else (True, value)

    def peek(self, key: str) -> V | Missing | None:
        """The value, None for a remembered miss, or :data:`MISSING` (the request path's
        form of :meth:`get`: no tuple per lookup)."""
        entry = self._data.get(key)
        if entry is None:
            return MISSING
        if entry[0] < monotonic():
            del self._data[key]
            return MISSING
        self._data.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: V | None, since: float | None = None) -> None:
        if since is not None:
            invalidated = self._invalidated.get(key, self._cleared_at)
            if invalidated >= since or self._cleared_at >= since:
                return  # invalidated while the value was being fetched: it may be stale
        ttl = self._ttl if value is not None else self._negative_ttl
        data = self._data
        if key in data:  # a new key goes to the end anyway
            data.move_to_end(key)
        data[key] = (monotonic() + ttl, value)
        if len(data) > self._maxsize:
            data.popitem(last=False)

    def expires_at(self, key: str) -> float | None:
        """When the entry of ``key`` expires; None when there is none."""
        entry = self._data.get(key)
        return None if entry is None else entry[0]

    def invalidate(self, key: str) -> None:
        now = monotonic()
        self._data.pop(key, None)
        self._invalidated[key] = now
        self._invalidated.move_to_end(key)
        horizon = now - _REMEMBER_INVALIDATIONS
        remembered = self._invalidated
        while remembered and (
            next(iter(remembered.values())) < horizon or len(remembered) > self._maxsize
        ):
            remembered.popitem(last=False)

    def clear(self) -> None:
        self._cleared_at = monotonic()
        self._data.clear()
        self._invalidated.clear()

    def __len__(self) -> int:
        return len(self._data)


A = TypeVar("A")


class AnswerMemo(Generic[A]):
    """Whole answers by request key (the Host header and raw path of a visit), for the
    visits whose answer is a function of the cached records alone.

    An entry never outlives what it was made from: it carries the earlier expiry of the
    records' cache entries, and the resolver's invalidation epoch, which every change
    announcement (and every clear) moves on, so that one announcement drops every
    answer at once without a walk over the memo. Bounded by clearing."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._data: dict[tuple[str, str], tuple[float, int, A]] = {}

    def get(self, key: tuple[str, str], epoch: int) -> A | None:
        entry = self._data.get(key)
        if entry is None or entry[1] != epoch or entry[0] < monotonic():
            return None
        return entry[2]

    def put(self, key: tuple[str, str], answer: A, expires: float, epoch: int) -> None:
        if len(self._data) >= self._maxsize:
            self._data.clear()
        self._data[key] = (expires, epoch, answer)

    def __len__(self) -> int:
        return len(self._data)
