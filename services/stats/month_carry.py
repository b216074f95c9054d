"""Copies each month's previous month into its rows of stats_link_monthly (migration
0207) in the background.

A month is copied once it has begun, and again whenever the clicks of its previous
month change afterwards (a late click, a cleared link). A period across two months is
read from the copy only while it is current, else from both months' rows: a stale or
missing copy is slower to answer, never wrong (:func:`services.stats.queries.top_links`
and the other per-link sums)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from aiohttp import web

from services.stats import repository
from services.stats.settings import Settings
from shared.resources import DB_POOL
from shared.tasks import CleanupCtx, periodic_task_ctx

log = logging.getLogger(__name__)


async def carry(conn: Any, domain_id: int, month: date) -> bool:
    """Copies one domain's month; False when a copy or a clear of the domain is under
    way (the next round copies it)."""
    async with conn.transaction():
        if not await repository.lock_carries(conn, domain_id, wait=False):
            return False
        await repository.carry_month(conn, domain_id, month)
        return True


async def carry_stale_months(pool: asyncpg.Pool, limit: int, now: datetime | None = None
                             ) -> int:
    """Copies up to ``limit`` stale months up to the current one, newest first; returns
    how many were copied."""
    current = (now or datetime.now(UTC)).date().replace(day=1)
    async with pool.acquire() as conn:
        stale = await repository.stale_carry_months(conn, current, limit)
    copied = 0
    for domain_id, month in stale:
        async with pool.acquire() as conn:
            copied += await carry(conn, domain_id, month)
    return copied


def month_carry_ctx(settings: Settings) -> CleanupCtx:
    async def step(app: web.Application) -> bool:
        copied = await carry_stale_months(app[DB_POOL], settings.month_carry_months)
        if copied:
            log.info("copied the previous month of %d domain months", copied)
        return copied == settings.month_carry_months  # more may wait (a long history)

    return periodic_task_ctx("month-carry", settings.month_carry_interval, step, log)
