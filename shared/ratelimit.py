"""Rate limits per API key and endpoint class: one atomic Redis script per check.

Algorithm: a sliding-window log. Each bucket is a sorted set of the admission times
(Redis server clock, milliseconds) inside the last ``period``; one Lua script drops the
old entries, counts, and admits (adds an entry) only while the count is under the
limit. The script runs atomically, so N concurrent callers against a limit of L are
admitted exactly ``min(N, L)`` times, across every process sharing the Redis, and the
window never lets a burst of 2L through at a boundary (as a fixed window would). The
cost is one entry per admitted request inside the window, which is small for the
limits used here (at most a few dozen per second per key and class).

Answers: :class:`Decision` carries what the ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``
and ``X-RateLimit-Reset`` (epoch seconds when the oldest entry leaves the window, so
at least one more call is possible) headers say, and ``Retry-After`` (whole seconds)
when refused.

While Redis is away: fail OPEN, but not unlimited. A failed (or timed-out) Redis call
switches the limiter to an in-process limiter with the same algorithm and limits for
``fallback_cooldown`` seconds (during which Redis is not tried, so requests do not pay
the Redis timeout each time); after that Redis is tried again and takes over as soon as
it answers. The fallback holds at most ``fallback_max_buckets`` buckets (least recently
used are dropped), so its memory is bounded. Consequence: during an outage each process
enforces the limits on its own, so a deployment of P processes admits up to P times the
limit. That is the chosen trade-off: an unavailable limiter must not take the
management API down with it, and abuse stays bounded per process.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import REDIS_FAILURES

log = logging.getLogger(__name__)

KEY_PREFIX: Final = "lh:rl:"

# KEYS[1]: bucket. ARGV[1]: limit, ARGV[2]: period in ms, ARGV[3]: a unique member.
# Returns {admitted 0/1, remaining, ms until the oldest entry leaves the window, now ms}.
_SLIDING_WINDOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], period)
  count = count + 1
  admitted = 1
end
local reset = period
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + period - now
end
local remaining = limit - count
if remaining < 0 then remaining = 0 end
return {admitted, remaining, reset, now}
"""



class RateRule(BaseModel):
    """``limit`` calls per ``period`` seconds."""

    model_config = ConfigDict(frozen=True)

    limit: int = Field(ge=1)
    period: float = Field(gt=0)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until at least one more call is possible
    now: float  # epoch seconds (the clock that decided)
    fallback: bool = False  # decided in-process because Redis was away

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_after))

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.now + self.reset_after)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class LocalLimiter:
    """The same sliding window in process memory, bounded to ``max_buckets`` buckets."""

    def __init__(self, max_buckets: int = 10_000) -> None:
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, bucket: str, rule: RateRule, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        entries = self._buckets.get(bucket)
        if entries is None:
            entries = deque()
            self._buckets[bucket] = entries
            while len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(bucket)
        while entries and entries[0] <= now - rule.period:
            entries.popleft()
        allowed = len(entries) < rule.limit
        if allowed:
            entries.append(now)
        reset_after = entries[0] + rule.period - now if entries else rule.period
        return Decision(
            allowed=allowed,
            limit=rule.limit,
            remaining=max(0, rule.limit - len(entries)),
            reset_after=reset_after,
            now=now,
            fallback=True,
        )

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimiter:
    """Checks one call against one bucket: Redis first, the local limiter while it is away."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        fallback_max_buckets: int = 10_000,
        fallback_cooldown: float = 1.0,
    ) -> None:
        self._client = client
        self._script = client.register_script(_SLIDING_WINDOW)
        self._local = LocalLimiter(fallback_max_buckets)
        self._cooldown = fallback_cooldown
        self._redis_retry_at = 0.0
        self._degraded = False

    @property
    def local(self) -> LocalLimiter:
        return self._local

    async def check(self, bucket: str, rule: RateRule) -> Decision:
        if time.monotonic() >= self._redis_retry_at:
            try:
                return await self._check_redis(bucket, rule)
            except REDIS_FAILURES as exc:
                if not self._degraded:  # once per outage, not once per request
                    log.warning("rate limiter: Redis unavailable, limiting in-process: %r", exc)
                self._degraded = True
                self._redis_retry_at = time.monotonic() + self._cooldown
        return self._local.check(bucket, rule)

    async def _check_redis(self, bucket: str, rule: RateRule) -> Decision:
        period_ms = max(1, round(rule.period * 1000))
        answer = await self._script(
            keys=[KEY_PREFIX + bucket], args=[rule.limit, period_ms, secrets.token_hex(8)]
        )
        admitted, remaining, reset_ms, now_ms = (int(v) for v in answer)
        if self._degraded:
            log.info("rate limiter: Redis is back")
            self._degraded = False
        return Decision(
            allowed=bool(admitted),
            limit=rule.limit,
            remaining=remaining,
            reset_after=reset_ms / 1000,
            now=now_ms / 1000,
        )
