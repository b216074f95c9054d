"""Connection pools and clients as aiohttp ``cleanup_ctx`` generators.

Each generator connects, proves the connection works (a ping), yields while the app
runs, and closes in ``finally`` (aiohttp's ``web_advanced`` guidance). Apps reach the
clients only through the typed :class:`web.AppKey` constants below; nothing here is a
module-level client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Final

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from shared.settings import CommonSettings

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]

DB_POOL: Final = web.AppKey("db_pool", asyncpg.Pool)
REDIS: Final = web.AppKey("redis", aioredis.Redis)


async def create_db_pool(
    settings: CommonSettings,
    *,
    dsn: str | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    read_only: bool = False,
) -> asyncpg.Pool:
    """A pool whose every wait is bounded, so an outage surfaces as an error, not a hang."""
    server_settings = {"application_name": "linkhop"}
    if read_only:
        server_settings["default_transaction_read_only"] = "on"
    pool = await asyncpg.create_pool(
        dsn or settings.database_url,
        min_size=settings.db_pool_min if min_size is None else min_size,
        max_size=settings.db_pool_max if max_size is None else max_size,
        timeout=settings.db_connect_timeout.total_seconds(),
        command_timeout=settings.db_command_timeout.total_seconds(),
        server_settings=server_settings,
    )
    await pool.fetchval("SELECT 1")
    return pool


def db_pool_ctx(
    settings: CommonSettings, key: web.AppKey[asyncpg.Pool] = DB_POOL, *, read_only: bool = False
) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await create_db_pool(settings, read_only=read_only)
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
    return aioredis.Redis(connection_pool=pool)


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
