"""The services' Postgres pools (``shared.resources.create_db_pool``) against the real
Postgres: a released connection goes back to the pool without asyncpg's reset statement
(``keep_session``), and still carries nothing of its last user's transaction into the next
one."""

from __future__ import annotations

import asyncpg
import pytest

from shared.resources import create_db_pool
from shared.settings import CommonSettings

pytestmark = pytest.mark.stack


async def _last_statement(db: asyncpg.Pool, backend: int) -> str:
    query: str = await db.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", backend)
    return query


async def test_release_sends_no_reset_and_leaves_no_transaction_state(
        settings: CommonSettings, db: asyncpg.Pool) -> None:
    pool = await create_db_pool(settings, min_size=1, max_size=1, session={"jit": "off"})
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            default_work_mem = await conn.fetchval("SHOW work_mem")
            async with conn.transaction():
                await conn.execute("SET LOCAL work_mem = '77MB'")
                await conn.execute("SELECT pg_advisory_xact_lock(4242)")
            await conn.execute("SELECT 'the last statement'")
        # asyncpg's default reset would have run after it (RESET ALL and the rest).
        assert await _last_statement(db, backend) == "SELECT 'the last statement'"
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend
            assert await conn.fetchval("SHOW work_mem") == default_work_mem
            assert await conn.fetchval("SHOW jit") == "off"  # the pool's session setting
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()") == 0
    finally:
        await pool.close()
