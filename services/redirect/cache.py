"""The in-process record cache in front of Redis: bounded, LRU, short TTL.

Entries are keyed by the Redis key they came from (``lh:d:{host}``, ``lh:l:{host}:{path}``),
so a change announcement (whose message is exactly that key) drops the right entry. A
``None`` value is a remembered miss (negative entry), kept for its own, longer TTL.

The ``epoch`` counts invalidations: a lookup notes it before going to Redis and stores its
answer only when no invalidation happened meanwhile, so an answer fetched just before a
change can never be cached after the change was announced.
"""

from __future__ import annotations

from collections import OrderedDict
from time import monotonic
from typing import Generic, TypeVar

V = TypeVar("V")

_MISSING = object()


class RecordCache(Generic[V]):
    def __init__(self, maxsize: int, ttl: float, negative_ttl: float) -> None:
        self._data: OrderedDict[str, tuple[float, V | None]] = OrderedDict()
        self._maxsize = maxsize
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self.epoch = 0

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

    def put(self, key: str, value: V | None, epoch: int | None = None) -> None:
        if epoch is not None and epoch != self.epoch:
            return  # invalidated while the value was being fetched: it may be stale
        ttl = self._ttl if value is not None else self._negative_ttl
        self._data[key] = (monotonic() + ttl, value)
        self._data.move_to_end(key)
        if len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def invalidate(self, key: str) -> None:
        self.epoch += 1
        self._data.pop(key, None)

    def clear(self) -> None:
        self.epoch += 1
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
