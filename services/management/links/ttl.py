"""Short.io's ``ttl``: a link is deleted once its time to live has passed.

A background task of the management service deletes such links in batches (the same
delete path as the API: rows removed, Redis tombstones written), so a link stops
redirecting at most one sweep interval after its ttl.
"""

from __future__ import annotations

import logging

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from services.management.links import repository as links
from services.management.settings import Settings
from services.management.writethrough import Changes, deliver, queue, tombstones_of
from shared.resources import DB_POOL, REDIS
from shared.tasks import CleanupCtx, periodic_task_ctx

log = logging.getLogger(__name__)

_BATCH = 500


async def sweep_expired(pool: asyncpg.Pool, redis: aioredis.Redis) -> int:
    """Deletes every link past its ttl; returns how many."""
    total = 0
    while True:
        async with pool.acquire() as conn:
            async with conn.transaction():
                ids = await links.lock_expired_ttl(conn, _BATCH)
                removed = await links.delete_links(conn, ids) if ids else []
                queued = await queue(conn, Changes(tombstones=tombstones_of(removed)))
            await deliver(conn, redis, queued)
        total += len(removed)
        if len(ids) < _BATCH:
            return total


def ttl_sweeper_ctx(settings: Settings) -> CleanupCtx:
    async def step(app: web.Application) -> bool:
        swept = await sweep_expired(app[DB_POOL], app[REDIS])
        if swept:
            log.info("deleted %d links past their ttl", swept)
        return False  # it sweeps until nothing is left

    return periodic_task_ctx("ttl-sweeper", settings.ttl_sweep_interval, step, log)
