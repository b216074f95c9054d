"""SQL for teams and domains."""

from __future__ import annotations

from typing import Any

import asyncpg

DOMAIN_COLUMNS = """id, team_id, hostname, unicode_hostname, state, link_type, case_sensitive,
    hide_referer, hide_visitor_ip, https_level, robots, cloaking, redirect_type, root_redirect,
    not_found_redirect, webhook_url, record_version, created_at, updated_at"""


async def create_team(conn: Any, name: str) -> int:
    team_id: int = await conn.fetchval("INSERT INTO teams(name) VALUES ($1) RETURNING id", name)
    return team_id


async def first_team(conn: Any) -> int | None:
    team_id: int | None = await conn.fetchval("SELECT id FROM teams ORDER BY id LIMIT 1")
    return team_id


async def create_domain(
    conn: Any, *, team_id: int, hostname: str, unicode_hostname: str
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO domains (team_id, hostname, unicode_hostname) VALUES ($1, $2, $3)
            RETURNING {DOMAIN_COLUMNS}""",
        team_id, hostname, unicode_hostname,
    )
    return row


async def get_by_hostname(conn: Any, hostname: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {DOMAIN_COLUMNS} FROM domains WHERE hostname = $1", hostname
    )
    return row


async def get_by_id(conn: Any, domain_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {DOMAIN_COLUMNS} FROM domains WHERE id = $1", domain_id
    )
    return row
