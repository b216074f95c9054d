"""A circuit breaker for Redis: while Redis is failing, requests stop paying its timeout.

Closed: calls go through; ``failures`` consecutive failures open it. Open: calls are
refused at once (:meth:`allow` is False) for ``cooldown`` seconds. Then one trial call is
let through (half-open); its success closes the breaker, its failure opens it again.

Calls that arrive while the trial is under way may wait for its outcome
(:meth:`trial_outcome`) instead of going to the fallback at once: when Redis is back,
the lookups of that moment then read it too, rather than all of them but one landing
on Postgres in a burst (measured: about half a second of fallback at 256 connections).
"""

from __future__ import annotations

import asyncio
from time import monotonic


class Breaker:
    def __init__(self, failures: int, cooldown: float, trial_wait: float = 0.0) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        # How long a call waits for the trial: what the trial's own lookup may take.
        self._trial_wait = trial_wait
        self._failures = 0
        self._open_until = 0.0
        self._trial = False
        # The trial's outcome, made by the first call that waits for it.
        self._trial_result: asyncio.Future[bool] | None = None
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

    async def trial_outcome(self) -> bool:
        """True when a trial under way finds Redis back (waiting at most ``trial_wait``);
        False at once when none is."""
        if not self._trial:
            return False
        if self._trial_result is None:
            self._trial_result = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(self._trial_result),
                                          self._trial_wait)
        except TimeoutError:
            return False

    def success(self) -> None:
        self._failures = 0
        self._trial = False
        self._settle(True)

    def failure(self) -> None:
        self._failures += 1
        self._trial = False
        if self._failures >= self._threshold:
            if self._failures == self._threshold:
                self.opened += 1
            self._open_until = monotonic() + self._cooldown
        self._settle(False)

    def _settle(self, redis_back: bool) -> None:
        waiting, self._trial_result = self._trial_result, None
        if waiting is not None and not waiting.done():
            waiting.set_result(redis_back)
