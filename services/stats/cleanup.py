"""Retention of the raw click log: the service deletes rows older than the configured
retention itself, in small steps, on a timer (rollups are kept)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from services.stats import repository
from services.stats.settings import Settings
from shared.resources import DB_POOL
from shared.tasks import CleanupCtx, background_task_ctx

log = logging.getLogger(__name__)


async def delete_expired_clicks(pool: asyncpg.Pool, settings: Settings,
                                now: datetime | None = None) -> int:
    cutoff = (now or datetime.now(UTC)) - settings.raw_click_retention
    total = 0
    while True:
        async with pool.acquire() as conn:
            deleted = await repository.delete_clicks_before(conn, cutoff, settings.cleanup_batch)
        total += deleted
        if deleted < settings.cleanup_batch:
            return total


async def _cleanup_forever(pool: asyncpg.Pool, settings: Settings) -> None:
    while True:
        try:
            deleted = await delete_expired_clicks(pool, settings)
            if deleted:
                log.info("deleted %d raw clicks past retention", deleted)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("raw click cleanup failed; next attempt at the next interval")
        await asyncio.sleep(settings.cleanup_interval.total_seconds())


def cleanup_ctx(settings: Settings) -> CleanupCtx:
    async def run(app: web.Application) -> None:
        await _cleanup_forever(app[DB_POOL], settings)

    return background_task_ctx("raw-click-cleanup", run)
