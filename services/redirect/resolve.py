"""From a request's Host and path to the compiled domain and link records.

Order of sources, per lookup:
1. the in-process cache (:mod:`services.redirect.cache`), keyed by Redis key;
2. Redis: the link's key, or, when the domain's record is not cached, the domain's key
   and both candidate link keys (exact and case-folded path: the domain says which one
   applies), in one ``MGET`` shared with the other lookups of the same moment
   (:mod:`services.redirect.batcher`), behind a circuit breaker
   (:mod:`services.redirect.breaker`);
3. Postgres, through a read-only pool, when Redis is down or lacks a record (a flush
   or an empty restart loses records, and the edge cannot tell which): one query
   per key however many requests miss it at once (single flight), within a rate budget
   (a token bucket), so a scan of random paths cannot flood the database. What Postgres
   knows is written back to Redis (version-checked, so never over a newer record);
   what it does not know is remembered as a miss for ``negative_ttl``.

Staleness bound: a change the management service announces on the change channel drops
the cached entry as soon as the subscriber reads it (milliseconds). If an announcement
is missed (subscriber reconnecting), the cache TTL (``cache_ttl``, 2 s by default)
bounds how long a changed or deleted link can keep redirecting to its old destination;
a remembered miss (a link just created) lasts at most ``negative_ttl`` (10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from time import monotonic
from typing import Any, TypeVar
from urllib.parse import unquote

import asyncpg
import redis.asyncio as aioredis

from services.redirect.batcher import MGetBatcher
from services.redirect.breaker import Breaker
from services.redirect.cache import MISSING, RecordCache
from services.redirect.settings import Settings
from shared.errors import REDIS_FAILURES
from shared.linkrecord import (
    DomainRecord,
    LinkRecord,
    RecordStore,
    domain_key,
    link_key,
    parse_domain,
    parse_link,
    path_key_for,
)
from shared.record_repository import fetch_domain_record, fetch_link_record
from shared.resources import create_db_pool

log = logging.getLogger(__name__)

T = TypeVar("T")
Hit = tuple[DomainRecord | None, LinkRecord | None]

_DB_RETRY = 1.0
# Distinct Host headers remembered by Resolver.hostname (cleared when full).
_HOSTNAMES = 4096


class LookupUnavailable(Exception):
    """Neither Redis nor Postgres could answer (or the fallback budget is spent)."""


def hostname_of(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):  # IPv6 literal: keep as is, drop the port
        return host.split("]")[0] + "]"
    if ":" in host:
        host = host.rsplit(":", 1)[0]
    host = host.rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def path_of(raw_path: str) -> str:
    """The link path: percent-decoded, without the leading slash and the query."""
    path = raw_path.split("?", 1)[0][1:]
    return unquote(path) if "%" in path else path


def query_of(raw_path: str) -> str:
    """The raw query string of a request target (what ``URL.raw_query_string`` gives,
    without parsing the whole URL for it)."""
    if "?" not in raw_path:  # most visits: nothing to split
        return ""
    _, _, query = raw_path.partition("?")
    return query.partition("#")[0] if "#" in query else query


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = monotonic()

    def take(self) -> bool:
        now = monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class LazyPool:
    """A read-only Postgres pool made on first need, so the service starts (and serves
    from Redis) while Postgres is down; attempts are spaced ``_DB_RETRY`` apart."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._next_try = 0.0

    async def get(self) -> asyncpg.Pool:
        if self.pool is not None:
            return self.pool
        async with self._lock:
            if self.pool is not None:
                return self.pool
            if monotonic() < self._next_try:
                raise LookupUnavailable("database unavailable")
            try:
                self.pool = await create_db_pool(
                    self._settings, max_size=self._settings.db_pool_max, read_only=True
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    TimeoutError) as exc:
                self._next_try = monotonic() + _DB_RETRY
                raise LookupUnavailable(f"database unavailable: {exc!r}") from exc
            return self.pool

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None


class Resolver:
    def __init__(self, settings: Settings, client: aioredis.Redis, pool: LazyPool) -> None:
        ttl = settings.cache_ttl.total_seconds()
        negative = settings.negative_ttl.total_seconds()
        self.domains: RecordCache[DomainRecord] = RecordCache(settings.cache_size, ttl, negative)
        self.links: RecordCache[LinkRecord] = RecordCache(settings.cache_size, ttl, negative)
        self.redis = client
        self.breaker = Breaker(settings.breaker_failures,
                               settings.breaker_cooldown.total_seconds(),
                               trial_wait=settings.redis_timeout.total_seconds())
        self.batcher = MGetBatcher.for_client(client, settings.redis_batch_max,
                                              settings.redis_batches_in_flight,
                                              settings.redis_timeout.total_seconds())
        self.store = RecordStore(client)
        self.pool = pool
        self._budget = TokenBucket(settings.db_fallback_rate, settings.db_fallback_burst)
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._hostnames: dict[str, str] = {}
        # Moves on with every invalidation and clear: see cache.AnswerMemo.
        self.epoch = 0
        self._background: set[asyncio.Task[object]] = set()
        self.db_lookups = 0
        self.redis_errors = 0
        self.budget_refusals = 0

    # ---- the hot path -------------------------------------------------------------
    def hostname(self, host_header: str) -> str:
        """:func:`hostname_of`, remembered per Host header (bounded): a visit costs a
        dictionary hit instead of the normalisation."""
        hostname = self._hostnames.get(host_header)
        if hostname is None:
            if len(self._hostnames) >= _HOSTNAMES:
                self._hostnames.clear()
            hostname = self._hostnames[host_header] = hostname_of(host_header)
        return hostname

    def find(self, hostname: str, path: str) -> Hit | Coroutine[Any, Any, Hit]:
        """The records: a tuple when the in-process cache holds them (no coroutine is made
        on a cache hit), else the coroutine that fetches them, for the caller to await
        (or close). Keys and the domain's record are looked up once for both paths."""
        dkey = domain_key(hostname)
        domain = self.domains.peek(dkey)
        if domain is MISSING:
            return self._fetch_both(hostname, path, dkey)
        if domain is None:
            return None, None  # a remembered unknown host
        if domain.deleted:
            return domain, None
        path_key = path_key_for(path, domain.case_sensitive)
        lkey = link_key(hostname, path_key)
        link = self.links.peek(lkey)
        if link is MISSING:
            return self._fetch_link(hostname, domain, path_key, lkey)
        return domain, link

    async def lookup(self, hostname: str, path: str) -> Hit:
        """:meth:`find`, awaited. Raises :class:`LookupUnavailable` when neither Redis
        nor Postgres can answer."""
        found = self.find(hostname, path)
        return found if isinstance(found, tuple) else await found

    def expiry(self, hostname: str, path: str, domain: DomainRecord) -> float | None:
        """When the first of the cache entries a (domain, link) answer came from expires
        (monotonic time); None when one of them is not cached."""
        domain_expires = self.domains.expires_at(domain_key(hostname))
        link_expires = self.links.expires_at(
            link_key(hostname, path_key_for(path, domain.case_sensitive)))
        if domain_expires is None or link_expires is None:
            return None
        return min(domain_expires, link_expires)

    def invalidate(self, key: str) -> None:
        self.epoch += 1  # answers derived from cached records (AnswerMemo) are dropped
        if key.startswith("lh:l:"):
            self.links.invalidate(key)
        elif key.startswith("lh:d:"):
            self.domains.invalidate(key)

    def clear(self) -> None:
        self.epoch += 1
        self.domains.clear()
        self.links.clear()

    # ---- Redis, then Postgres -----------------------------------------------------
    async def _fetch_link(self, hostname: str, domain: DomainRecord, path_key: str,
                          lkey: str) -> Hit:
        """The link's record from Redis (else Postgres), cached on the way. The domain's
        record is cached (the usual case: a few domains, many links), so only the link's
        key is read: the domain says which one it is (case folding)."""
        since = RecordCache.stamp()
        link_raw: bytes | None = None
        redis_ok = False
        if self.breaker.allow() or await self.breaker.trial_outcome():
            try:
                (link_raw,) = await self.batcher.mget((lkey,))
                self.breaker.success()
                redis_ok = True
            except REDIS_FAILURES as exc:
                self._redis_failed(exc)
        if link_raw is not None:
            return domain, self._parsed_link(lkey, link_raw, since)
        return domain, await self._db_link_cached(hostname, domain, path_key, lkey, redis_ok,
                                                  since)

    async def _fetch_both(self, hostname: str, path: str, dkey: str) -> Hit:
        """The domain's record is not cached: one MGET reads it and both candidate link
        keys (exact and case-folded path), since only the domain says which applies."""
        since = RecordCache.stamp()
        folded = path.lower()
        exact_key, folded_key = link_key(hostname, path), link_key(hostname, folded)
        keys = (dkey, exact_key) if folded == path else (dkey, exact_key, folded_key)
        replies: list[bytes | None] = [None, None, None]
        redis_ok = False
        if self.breaker.allow() or await self.breaker.trial_outcome():
            try:
                replies = await self.batcher.mget(keys)
                self.breaker.success()
                redis_ok = True
            except REDIS_FAILURES as exc:
                self._redis_failed(exc)
        domain_raw, exact_raw = replies[0], replies[1]
        folded_raw = replies[2] if len(replies) > 2 else exact_raw
        known, domain = self.domains.get(dkey)
        if known and domain is not None:
            pass  # cached meanwhile and fresh (a change would have dropped it)
        elif redis_ok and domain_raw is not None:
            domain = parse_domain(domain_raw)
            self.domains.put(dkey, domain, since)
        else:
            domain = await self._from_db(dkey, lambda: self._db_domain(hostname), redis_ok)
            self.domains.put(dkey, domain, since)
        if domain is None or domain.deleted:
            return domain, None
        if domain.case_sensitive:
            lkey, link_raw, path_key = exact_key, exact_raw, path
        else:
            lkey, link_raw, path_key = folded_key, folded_raw, folded
        if link_raw is not None:
            return domain, self._parsed_link(lkey, link_raw, since)
        return domain, await self._db_link_cached(hostname, domain, path_key, lkey, redis_ok,
                                                  since)

    def _parsed_link(self, lkey: str, raw: bytes, since: float) -> LinkRecord:
        link = parse_link(raw)
        self.links.put(lkey, link, since)
        return link

    async def _db_link_cached(self, hostname: str, domain: DomainRecord, path_key: str,
                              lkey: str, redis_ok: bool, since: float) -> LinkRecord | None:
        """Redis lacks the link (or is down): Postgres answers, and the answer (a miss
        too) is cached."""
        link = await self._from_db(lkey, lambda: self._db_link(hostname, domain, path_key),
                                   redis_ok)
        self.links.put(lkey, link, since)
        return link

    def _redis_failed(self, exc: BaseException) -> None:
        self.breaker.failure()
        self.redis_errors += 1
        log.debug("redis lookup failed: %r", exc)

    async def _from_db(
        self, key: str, query: Callable[[], Awaitable[T | None]], redis_ok: bool
    ) -> T | None:
        """One query per key at a time (single flight), within the fallback budget.

        Over budget: when Redis answered (it just lacks the key) the answer is "not
        found" (remembered as a miss); when Redis is down, "unavailable" (a 503 with
        Retry-After)."""
        flight = self._flights.get(key)
        if flight is None:
            if not self._budget.take():
                self.budget_refusals += 1
                if redis_ok:
                    return None
                raise LookupUnavailable("database fallback budget spent")
            flight = asyncio.ensure_future(query())
            self._flights[key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(key, None))
        result: T | None = await asyncio.shield(flight)
        return result

    async def _db_domain(self, hostname: str) -> DomainRecord | None:
        pool = await self.pool.get()
        self.db_lookups += 1
        try:
            async with pool.acquire() as conn:
                record = await fetch_domain_record(conn, hostname)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise LookupUnavailable(f"database lookup failed: {exc!r}") from exc
        if record is not None:
            self._refill(lambda: self.store.put_domain(record))
        return record

    async def _db_link(
        self, hostname: str, domain: DomainRecord, path_key: str
    ) -> LinkRecord | None:
        pool = await self.pool.get()
        self.db_lookups += 1
        try:
            async with pool.acquire() as conn:
                record = await fetch_link_record(conn, domain.domain_id, path_key)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise LookupUnavailable(f"database lookup failed: {exc!r}") from exc
        if record is not None:
            self._refill(lambda: self.store.put_link(hostname, path_key, record))
        return record

    def _refill(self, write: Callable[[], Awaitable[bool]]) -> None:
        """Writes a record Postgres had back into Redis, off the request's path."""

        async def run() -> object:
            if not self.breaker.allow():
                return False
            try:
                result = await write()
            except REDIS_FAILURES:
                self.breaker.failure()
                return False
            self.breaker.success()
            return result

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.batcher.close()
