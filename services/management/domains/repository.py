"""SQL for teams and domains (and re-keying a domain's links when its case setting flips)."""

from __future__ import annotations

from typing import Any, Final

import asyncpg

DOMAIN_COLUMNS = """id, team_id, hostname, unicode_hostname, state, link_type, case_sensitive,
    hide_referer, hide_visitor_ip, https_level, robots, cloaking, redirect_type, root_redirect,
    not_found_redirect, webhook_url, increment_counter, record_version, created_at, updated_at"""

# Settings a client may change, by column; anything else never reaches the SQL text.
SETTING_COLUMNS: Final = frozenset({
    "link_type", "case_sensitive", "hide_referer", "hide_visitor_ip", "https_level", "robots",
    "cloaking", "redirect_type", "root_redirect", "not_found_redirect", "webhook_url",
})


async def create_team(conn: Any, name: str) -> int:
    team_id: int = await conn.fetchval("INSERT INTO teams(name) VALUES ($1) RETURNING id", name)
    return team_id


async def first_team(conn: Any) -> int | None:
    team_id: int | None = await conn.fetchval("SELECT id FROM teams ORDER BY id LIMIT 1")
    return team_id


async def create_domain(
    conn: Any,
    *,
    team_id: int,
    hostname: str,
    unicode_hostname: str,
    hide_referer: bool = False,
    link_type: str = "random",
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO domains (team_id, hostname, unicode_hostname, hide_referer, link_type)
            VALUES ($1, $2, $3, $4, $5)
            RETURNING {DOMAIN_COLUMNS}""",
        team_id, hostname, unicode_hostname, hide_referer, link_type,
    )
    return row


async def create_domain_if_new(
    conn: Any,
    *,
    team_id: int,
    hostname: str,
    unicode_hostname: str,
    hide_referer: bool = False,
    link_type: str = "random",
) -> asyncpg.Record | None:
    """The new domain, or None when the hostname is taken (by any team)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""INSERT INTO domains (team_id, hostname, unicode_hostname, hide_referer, link_type)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (hostname) DO NOTHING
            RETURNING {DOMAIN_COLUMNS}""",
        team_id, hostname, unicode_hostname, hide_referer, link_type,
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


async def lock_by_id(conn: Any, domain_id: int) -> asyncpg.Record | None:
    """The domain row, locked until the transaction ends (FOR UPDATE also makes link
    inserts on the domain wait, since their foreign key takes a KEY SHARE lock)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {DOMAIN_COLUMNS} FROM domains WHERE id = $1 FOR UPDATE", domain_id
    )
    return row


def _like_pattern(text: str) -> str:
    """``text`` as a literal substring for ILIKE (its wildcards escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_domains(
    conn: Any, team_id: int, *, only_id: int | None = None, pattern: str | None = None,
    limit: int = 1000, offset: int = 0,
) -> list[asyncpg.Record]:
    rows = await conn.fetch(
        f"""SELECT {DOMAIN_COLUMNS} FROM domains
            WHERE team_id = $1 AND ($2::bigint IS NULL OR id = $2)
              AND ($3::text IS NULL OR hostname ILIKE $3 OR unicode_hostname ILIKE $3)
            ORDER BY id LIMIT $4 OFFSET $5""",
        team_id, only_id, None if pattern is None else _like_pattern(pattern), limit, offset,
    )
    return list(rows)


async def update_settings(conn: Any, domain_id: int, changes: dict[str, Any]) -> asyncpg.Record:
    """Applies ``changes`` (column -> value) and takes a new record version, in one UPDATE."""
    unknown = set(changes) - SETTING_COLUMNS
    if unknown:
        raise ValueError(f"not a domain setting: {sorted(unknown)}")
    columns = sorted(changes)
    assignments = "".join(f"{name} = ${i}, " for i, name in enumerate(columns, start=2))
    row: asyncpg.Record = await conn.fetchrow(
        f"""UPDATE domains SET {assignments}record_version = nextval('record_version_seq'),
                updated_at = now()
            WHERE id = $1 RETURNING {DOMAIN_COLUMNS}""",
        domain_id, *(changes[name] for name in columns),
    )
    return row


async def case_collisions(conn: Any, domain_id: int, limit: int = 10) -> list[list[str]]:
    """Groups of paths that would share one key on a case-insensitive domain."""
    rows = await conn.fetch(
        """SELECT array_agg(path ORDER BY path) AS paths FROM links WHERE domain_id = $1
           GROUP BY lower(path) HAVING count(*) > 1 ORDER BY lower(path) LIMIT $2""",
        domain_id, limit,
    )
    return [list(r["paths"]) for r in rows]


async def rekey_links(
    conn: Any, domain_id: int, case_sensitive: bool
) -> list[asyncpg.Record]:
    """Recomputes ``path_key`` of the domain's links whose key changes, each with a new
    record version; returns (id, old_key, path_key, record_version) of those links.

    No intermediate unique violation is possible: the old keys are unique, the new ones
    are (the caller refused collisions), and an old key of one link can equal the new key
    of another only when both new keys collide.
    """
    rows = await conn.fetch(
        """UPDATE links l
           SET path_key = CASE WHEN $2 THEN l.path ELSE lower(l.path) END,
               record_version = nextval('record_version_seq')
           FROM (SELECT id, path_key AS old_key FROM links
                 WHERE domain_id = $1
                   AND path_key <> CASE WHEN $2 THEN path ELSE lower(path) END
                 FOR UPDATE) old
           WHERE l.id = old.id
           RETURNING l.id, old.old_key, l.path_key, l.record_version""",
        domain_id, case_sensitive,
    )
    return list(rows)
