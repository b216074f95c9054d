"""SQL of the write-through outbox (shared/migrations/0160_record_outbox.sql)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

_COLUMNS = "id, link_id, domain_id, hostname, path_key, version"


async def insert(conn: Any, *, link_ids: list[int], domain_ids: list[int],
                 tombstones: list[tuple[str, str, int, int, int]]) -> list[int]:
    """One row per link, domain and tombstone (hostname, path_key, link_id, domain_id,
    version), in one statement; their ids."""
    rows = await conn.fetch(
        """INSERT INTO record_outbox (link_id, domain_id, hostname, path_key, version)
           SELECT unnest($1::bigint[]), NULL::bigint, NULL::text, NULL::text, NULL::bigint
           UNION ALL SELECT NULL, unnest($2::bigint[]), NULL, NULL, NULL
           UNION ALL SELECT t.link_id, t.domain_id, t.hostname, t.path_key, t.version
             FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])
                  AS t(hostname, path_key, link_id, domain_id, version)
           RETURNING id""",
        link_ids, domain_ids,
        [t[0] for t in tombstones], [t[1] for t in tombstones], [t[2] for t in tombstones],
        [t[3] for t in tombstones], [t[4] for t in tombstones],
    )
    return [r["id"] for r in rows]


async def claim(conn: Any, *, older_than: timedelta, limit: int) -> list[asyncpg.Record]:
    """The oldest rows queued more than ``older_than`` ago, locked until the transaction
    ends (SKIP LOCKED: two management processes drain different rows)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM record_outbox
            WHERE queued_at < now() - $1::interval
            ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED""",
        older_than, limit,
    )
    return rows


async def delete(conn: Any, ids: list[int]) -> None:
    await conn.execute("DELETE FROM record_outbox WHERE id = ANY($1::bigint[])", ids)
