"""Applies the SQL files in ``shared/migrations`` in name order, each once, recorded.

Every file runs in its own transaction together with its ``schema_migrations`` row, so
a failed migration leaves nothing half-applied. A session-level advisory lock makes
concurrent runners (several services starting at once, parallel test processes) safe.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# Arbitrary, fixed: the advisory-lock id that serialises migration runners.
_MIGRATION_LOCK_ID = 7_451_903_221


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("shared") / "migrations"
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return files


async def migrate(dsn: str) -> list[str]:
    """Applies pending migrations; returns the names applied now."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied: list[str] = []
            for name, sql in migration_files():
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations(version) VALUES ($1)", name)
                log.info("applied migration %s", name)
                applied.append(name)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)
    finally:
        await conn.close()
