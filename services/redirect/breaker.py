"""A circuit breaker for Redis: while Redis is failing, requests stop paying its timeout.

Closed: calls go through; ``failures`` consecutive failures open it. Open: calls are
refused at once (:meth:`allow` is False) for ``cooldown`` seconds. Then one trial call is
let through (half-open); its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

from time import monotonic


class Breaker:
    def __init__(self, failures: int, cooldown: float) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0
        self._trial = False
        self.opened = 0  # times it opened, for /metrics

    @property
    def is_open(self) -> bool:
        return self._failures >= self._threshold

    def allow(self) -> bool:
        if self._failures < self._threshold:
            return True
        if self._trial or monotonic() < self._open_until:
            return False
        self._trial = True  # half-open: exactly one call tries Redis again
        return True

    def success(self) -> None:
        self._failures = 0
        self._trial = False

    def failure(self) -> None:
        self._failures += 1
        self._trial = False
        if self._failures >= self._threshold:
            if self._failures == self._threshold:
                self.opened += 1
            self._open_until = monotonic() + self._cooldown
