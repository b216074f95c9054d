"""SQL for links."""

from __future__ import annotations

from typing import Any

import asyncpg

LINK_COLUMNS = """l.id, l.id_string, l.domain_id, l.team_id, l.owner_key_id, l.folder_id, l.path,
    l.path_key, l.original_url, l.title, l.tags, l.expires_at, l.expired_url,
    (l.password_hash IS NOT NULL) AS has_password, l.redirect_type, l.clicks_limit,
    l.android_url, l.iphone_url, l.split_url, l.split_percent, l.utm_source, l.utm_medium,
    l.utm_campaign, l.utm_term, l.utm_content, l.skip_qs, l.cloaking, l.archived, l.source,
    l.ttl, l.record_version, l.created_at, l.updated_at, d.hostname"""


async def insert_link(
    conn: Any,
    *,
    id_string: str,
    domain_id: int,
    team_id: int,
    owner_key_id: int | None,
    path: str,
    path_key: str,
    original_url: str,
    title: str | None,
) -> asyncpg.Record | None:
    """The new link, or None when its path is taken on that domain."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""WITH l AS (
              INSERT INTO links (id_string, domain_id, team_id, owner_key_id, path, path_key,
                                 original_url, title)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
              ON CONFLICT (domain_id, path_key) DO NOTHING
              RETURNING *)
            SELECT {LINK_COLUMNS} FROM l JOIN domains d ON d.id = l.domain_id""",
        id_string, domain_id, team_id, owner_key_id, path, path_key, original_url, title,
    )
    return row


async def get_link(conn: Any, id_string: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {LINK_COLUMNS} FROM links l JOIN domains d ON d.id = l.domain_id"
        " WHERE l.id_string = $1",
        id_string,
    )
    return row
