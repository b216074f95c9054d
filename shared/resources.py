"""Connection pools and clients as aiohttp ``cleanup_ctx`` generators.

Each generator connects, proves the connection works (a ping), yields while the app
runs, and closes in ``finally`` (aiohttp's ``web_advanced`` guidance). Apps reach the
clients only through the typed :class:`web.AppKey` constants below; nothing here is a
module-level client.

Every wait on Postgres is bounded: connecting (``db_connect_timeout``), each query
(``db_command_timeout``) and taking a connection from the pool (:class:`BoundedPool`,
whose ``acquire()`` defaults to a timeout instead of waiting forever on an exhausted
pool). A service that must keep answering while Postgres is away (management: clean
503s, then recovery by itself) passes ``require_at_startup=False`` to
:func:`db_pool_ctx`: its pool then opens no connection at startup and connects on
first use.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from shared.settings import CommonSettings

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]

log = logging.getLogger(__name__)

DB_POOL: Final = web.AppKey("db_pool", asyncpg.Pool)
REDIS: Final = web.AppKey("redis", aioredis.Redis)


class BoundedPool(asyncpg.Pool):
    """An asyncpg pool whose ``acquire()`` gives up after ``acquire_timeout`` seconds.

    asyncpg's own default is to wait forever for a free connection; under an outage
    (or a burst larger than the pool) that turns into hung requests. Callers keep
    writing ``async with pool.acquire() as conn``; an explicit ``timeout=`` still wins.
    """

    __slots__ = ("_acquire_timeout",)

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


async def keep_session(connection: asyncpg.Connection) -> None:
    """The pools' reset on release: nothing to undo, so no statement to send.

    asyncpg's default reset sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release. That is one more round trip on every ``async with
    pool.acquire()``, for session state this project never leaves behind:
    - settings change only with ``SET LOCAL``;
    - advisory locks are only per transaction;
    - cursors and temporary tables end with their transaction;
    - nothing uses ``LISTEN``.
    ``tests/unit/test_session_state.py`` checks the source for each of these. A statistics
    request releases up to four connections, and each of those round trips cost it
    0.3-0.5 ms here (top by interval, in process: p50 14.4 -> 12.4 ms, p99 23 -> 17 ms).
    Before calling this, asyncpg still rolls back a transaction left open and drops the
    connection's listeners (``Connection._reset``)."""


async def create_db_pool(
    settings: CommonSettings,
    *,
    dsn: str | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    read_only: bool = False,
    connect_now: bool = True,
    session: Mapping[str, str] | None = None,
) -> asyncpg.Pool:
    """A pool whose every wait is bounded, so an outage surfaces as an error, not a hang.

    With ``connect_now=False`` no connection is opened (nor checked) here and the pool
    keeps no floor (``min_size=0``): it connects on first use, so a service can start
    while Postgres is away and recovers by itself when it is back.
    """
    # ``session``: settings every connection starts with (sent when it connects, and never
    # changed after: see keep_session), so no request spends a round trip on them.
    server_settings = {"application_name": "linkhop", **(session or {})}
    if read_only:
        server_settings["default_transaction_read_only"] = "on"
    connect_timeout = settings.db_connect_timeout.total_seconds()
    floor = settings.db_pool_min if min_size is None else min_size
    if not connect_now:
        floor = 0
    pool = BoundedPool(
        dsn or settings.database_url,
        acquire_timeout=connect_timeout,
        init_size=floor,
        min_size=floor,
        max_size=settings.db_pool_max if max_size is None else max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        timeout=connect_timeout,
        command_timeout=settings.db_command_timeout.total_seconds(),
        server_settings=server_settings,
        reset=keep_session,
    )
    await pool
    if connect_now:
        await pool.fetchval("SELECT 1")
    return pool


def db_pool_ctx(
    settings: CommonSettings,
    key: web.AppKey[asyncpg.Pool] = DB_POOL,
    *,
    read_only: bool = False,
    require_at_startup: bool = True,
    session: Mapping[str, str] | None = None,
) -> CleanupCtx:
    """The pool as a cleanup context. ``require_at_startup=False``: start even while
    Postgres is unreachable (requests answer 503 until it is back)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await create_db_pool(
            settings, read_only=read_only, connect_now=require_at_startup, session=session
        )
        if not require_at_startup:
            try:
                await pool.fetchval("SELECT 1")
            except Exception as exc:  # reported, not fatal: the pool reconnects on use
                log.warning("postgres unreachable at startup, serving 503s: %r", exc)
        app[key] = pool
        try:
            yield
        finally:
            await pool.close()

    return ctx


def create_redis(settings: CommonSettings, *, max_connections: int = 64) -> aioredis.Redis:
    timeout = settings.redis_timeout.total_seconds()
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    # from_pool: the client owns the pool, so aclose() also closes its connections.
    return aioredis.Redis.from_pool(pool)


def redis_ctx(settings: CommonSettings, key: web.AppKey[aioredis.Redis] = REDIS) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        client = create_redis(settings)
        await client.ping()
        app[key] = client
        try:
            yield
        finally:
            await client.aclose()

    return ctx
