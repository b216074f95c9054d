"""SQL of the stats service: consumed positions and per-link totals."""

from __future__ import annotations

from typing import Any

import asyncpg


async def load_offsets(
    conn: Any, group: str, topic: str, partitions: list[int]
) -> dict[int, int]:
    rows = await conn.fetch(
        """SELECT partition, next_offset FROM stats_offsets
           WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])""",
        group, topic, partitions,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def lock_offset(conn: Any, group: str, topic: str, partition: int) -> int:
    """The stored next offset of a partition, row-locked until the transaction ends.

    The lock fences a consumer that lost the partition in a rebalance but still holds
    a batch: it waits, then sees the new owner's position and skips what is counted.
    """
    await conn.execute(
        """INSERT INTO stats_offsets (consumer_group, topic, partition, next_offset)
           VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING""",
        group, topic, partition,
    )
    stored: int = await conn.fetchval(
        """SELECT next_offset FROM stats_offsets
           WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE""",
        group, topic, partition,
    )
    return stored


async def store_offset(conn: Any, group: str, topic: str, partition: int, offset: int) -> None:
    await conn.execute(
        """UPDATE stats_offsets SET next_offset = $4
           WHERE consumer_group = $1 AND topic = $2 AND partition = $3""",
        group, topic, partition, offset,
    )


async def add_link_clicks(conn: Any, counts: dict[tuple[int, int], int]) -> None:
    if not counts:
        return
    keys = list(counts)
    await conn.execute(
        """INSERT INTO stats_link_totals (link_id, domain_id, total_clicks)
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
           ON CONFLICT (link_id) DO UPDATE
             SET total_clicks = stats_link_totals.total_clicks + EXCLUDED.total_clicks""",
        [k[0] for k in keys], [k[1] for k in keys], [counts[k] for k in keys],
    )


async def link_total(conn: asyncpg.Connection | Any, link_id: int) -> int:
    total: int | None = await conn.fetchval(
        "SELECT total_clicks FROM stats_link_totals WHERE link_id = $1", link_id
    )
    return total or 0


async def link_owner(conn: Any, id_string: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, domain_id, team_id FROM links WHERE id_string = $1", id_string
    )
    return row
