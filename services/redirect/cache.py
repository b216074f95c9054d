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
from time import monotonic
from typing import Generic, TypeVar

V = TypeVar("V")

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
        entry = self._data.get(key)
        if entry is None:
            return False, None
        if entry[0] < monotonic():
            del self._data[key]
            return False, None
        self._data.move_to_end(key)
        return True, entry[1]

    def put(self, key: str, value: V | None, since: float | None = None) -> None:
        if since is not None:
            invalidated = self._invalidated.get(key, self._cleared_at)
            if invalidated >= since or self._cleared_at >= since:
                return  # invalidated while the value was being fetched: it may be stale
        ttl = self._ttl if value is not None else self._negative_ttl
        self._data[key] = (monotonic() + ttl, value)
        self._data.move_to_end(key)
        if len(self._data) > self._maxsize:
            self._data.popitem(last=False)

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
