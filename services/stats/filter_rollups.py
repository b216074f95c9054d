"""Builds the filter rollups (migration 0206) in the background.

A day is built as its hours close (a few minutes after each hour, so that the clicks
still on their way for it have arrived), once more when it ends, and again whenever its
clicks change afterwards (a late click, a cleared link). Hours not covered are read from
the facts: a stale or missing day is slower to answer, never wrong
(:func:`services.stats.queries.built_days`)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from services.stats import repository
from services.stats.periods import floor_hour_utc
from services.stats.settings import Settings
from shared.resources import DB_POOL
from shared.tasks import CleanupCtx, periodic_task_ctx

log = logging.getLogger(__name__)


async def build_day(conn: Any, domain_id: int, day: date, through: datetime) -> bool:
    """Builds the day's hours before ``through`` from one snapshot of its facts; False
    when they hold no clicks, another process was building the day, or its clicks
    changed meanwhile."""
    try:
        async with conn.transaction(isolation="repeatable_read"):
            clicks = await repository.lock_filter_day(conn, domain_id, day, through)
            if clicks is None:
                return False
            await repository.write_filter_day(conn, domain_id, day, through, clicks)
            return True
    except asyncpg.exceptions.SerializationError:
        # Its hours changed after the snapshot was taken: the next round builds the
        # day from a newer one.
        return False


async def build_stale_days(pool: asyncpg.Pool, limit: int, settle: timedelta,
                           now: datetime | None = None) -> int:
    """Builds up to ``limit`` stale days, newest first, each up to the last hour that
    ended ``settle`` ago or earlier; returns how many were built."""
    closed = floor_hour_utc((now or datetime.now(UTC)) - settle)
    async with pool.acquire() as conn:
        stale = await repository.stale_filter_days(conn, closed, limit)
    built = 0
    for domain_id, day, through in stale:
        async with pool.acquire() as conn:
            built += await build_day(conn, domain_id, day, through)
    return built


def filter_rollups_ctx(settings: Settings) -> CleanupCtx:
    async def step(app: web.Application) -> bool:
        built = await build_stale_days(app[DB_POOL], settings.filter_rollup_days,
                                       settings.filter_rollup_settle)
        if built:
            log.info("built the filter rollups of %d domain days", built)
        return built == settings.filter_rollup_days  # more may wait (a long history)

    return periodic_task_ctx("filter-rollups", settings.filter_rollup_interval, step, log)
