"""Retention of the raw click log: the service deletes rows older than the configured
retention itself, in small steps, on a timer (rollups are kept)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from services.stats import repository
from services.stats.settings import Settings
from shared.resources import DB_POOL
from shared.tasks import CleanupCtx, periodic_task_ctx

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


def cleanup_ctx(settings: Settings) -> CleanupCtx:
    async def step(app: web.Application) -> bool:
        deleted = await delete_expired_clicks(app[DB_POOL], settings)
        if deleted:
            log.info("deleted %d raw clicks past retention", deleted)
        return False  # it deletes until nothing is left

    return periodic_task_ctx("raw-click-cleanup", settings.cleanup_interval, step, log)
