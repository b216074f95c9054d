"""SQL of the stats consumer: consumed positions, the per-batch write, retention."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.stats.batch import CLICK_COLUMNS

# Each dimension's rollup name and the raw-click column it comes from.
DIMENSION_COLUMNS: dict[str, str] = {
    "country": "country",
    "region": "region",
    "city": "city",
    "browser": "browser",
    "os": "os",
    "device": "device",
    "referer": "referer_host",
    "social": "social",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
}

_FACT_COLUMNS = ", ".join(DIMENSION_COLUMNS.values())
_CLICK_TYPES = {
    "event_id": "uuid", "ts": "timestamptz", "link_id": "bigint", "domain_id": "bigint",
    "bot": "boolean", "combo": "bigint",
}
_UNNEST = ", ".join(
    f"${i}::{_CLICK_TYPES.get(name, 'text')}[]" for i, name in enumerate(CLICK_COLUMNS, 1)
)
# Every row of one (link, hour, combo) group has the same values: min() just picks them.
_FIRST_FACTS = ", ".join(f"min({col})" for col in DIMENSION_COLUMNS.values())
_DIM_VALUES = ", ".join(f"('{dim}', n.{col})" for dim, col in DIMENSION_COLUMNS.items())

# One statement per batch: insert the raw clicks, skipping event_ids already stored
# (duplicates and replays), and fold only the rows actually inserted into every rollup.
# GROUP BY makes each upsert touch a key once, as ON CONFLICT DO UPDATE requires.
WRITE_CLICKS_SQL = f"""
WITH new AS (
    INSERT INTO stats_clicks ({", ".join(CLICK_COLUMNS)})
    SELECT * FROM unnest({_UNNEST})
    ON CONFLICT (event_id) DO NOTHING
    RETURNING link_id, domain_id, date_trunc('hour', ts, 'UTC') AS hour,
              (ts AT TIME ZONE 'UTC')::date AS day, {_FACT_COLUMNS}, bot, visitor, combo
),
link_hourly AS (
    INSERT INTO stats_link_hourly AS t (link_id, hour, domain_id, clicks, human_clicks)
    SELECT link_id, hour, min(domain_id), count(*), count(*) FILTER (WHERE NOT bot)
    FROM new GROUP BY link_id, hour
    ON CONFLICT (link_id, hour) DO UPDATE
       SET clicks = t.clicks + EXCLUDED.clicks,
           human_clicks = t.human_clicks + EXCLUDED.human_clicks
),
domain_hourly AS (
    INSERT INTO stats_domain_hourly AS t (domain_id, hour, clicks, human_clicks)
    SELECT domain_id, hour, count(*), count(*) FILTER (WHERE NOT bot)
    FROM new GROUP BY domain_id, hour
    ON CONFLICT (domain_id, hour) DO UPDATE
       SET clicks = t.clicks + EXCLUDED.clicks,
           human_clicks = t.human_clicks + EXCLUDED.human_clicks
),
dims AS (
    SELECT n.domain_id, n.hour, d.dim, d.value
    FROM new n CROSS JOIN LATERAL (VALUES {_DIM_VALUES}) AS d(dim, value)
    WHERE d.value IS NOT NULL
),
domain_dims AS (
    INSERT INTO stats_domain_dims AS t (domain_id, dim, hour, value, clicks)
    SELECT domain_id, dim, hour, value, count(*) FROM dims
    GROUP BY domain_id, dim, hour, value
    ON CONFLICT (domain_id, dim, hour, value) DO UPDATE SET clicks = t.clicks + EXCLUDED.clicks
),
facts AS (
    INSERT INTO stats_facts AS t (link_id, hour, combo, domain_id, {_FACT_COLUMNS}, bot, clicks)
    SELECT link_id, hour, combo, min(domain_id), {_FIRST_FACTS}, bool_or(bot), count(*)
    FROM new GROUP BY link_id, hour, combo
    ON CONFLICT (link_id, hour, combo) DO UPDATE SET clicks = t.clicks + EXCLUDED.clicks
),
visitors AS (
    INSERT INTO stats_link_visitors (link_id, day, visitor)
    SELECT DISTINCT link_id, day, visitor FROM new WHERE visitor IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM new
"""


async def load_offsets(
    conn: Any, group: str, topic: str, partitions: list[int]
) -> dict[int, int]:
    rows = await conn.fetch(
        """SELECT partition, next_offset FROM stats_offsets
           WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])""",
        group, topic, partitions,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def lock_offsets(conn: Any, group: str, topic: str, partitions: list[int]
                       ) -> dict[int, int]:
    """The stored next offsets of ``partitions``, row-locked until the transaction ends.

    The lock fences a consumer that lost a partition in a rebalance but still holds a
    batch: it waits, then sees the new owner's position and skips what is counted.
    Rows are locked in partition order, so two consumers cannot deadlock on them.
    """
    rows = await conn.fetch(
        """INSERT INTO stats_offsets (consumer_group, topic, partition, next_offset)
           SELECT $1, $2, p, 0 FROM unnest($3::int[]) AS p ORDER BY p
           ON CONFLICT (consumer_group, topic, partition)
              DO UPDATE SET next_offset = stats_offsets.next_offset
           RETURNING partition, next_offset""",
        group, topic, sorted(partitions),
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def store_offsets(conn: Any, group: str, topic: str, offsets: dict[int, int]) -> None:
    await conn.execute(
        """UPDATE stats_offsets AS s SET next_offset = o.next_offset
           FROM unnest($3::int[], $4::bigint[]) AS o(partition, next_offset)
           WHERE s.consumer_group = $1 AND s.topic = $2 AND s.partition = o.partition""",
        group, topic, list(offsets), list(offsets.values()),
    )


async def write_clicks(conn: Any, columns: list[list[Any]]) -> int:
    """Stores the clicks not stored before and adds them to every rollup; returns how
    many were new."""
    if not columns[0]:
        return 0
    inserted: int = await conn.fetchval(WRITE_CLICKS_SQL, *columns)
    return inserted


async def delete_clicks_before(conn: Any, cutoff: datetime, limit: int) -> int:
    """Deletes up to ``limit`` raw clicks older than ``cutoff`` (in small steps, so the
    cleanup never holds long locks against the consumer)."""
    result: str = await conn.execute(
        """DELETE FROM stats_clicks WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM stats_clicks WHERE ts < $1 LIMIT $2))""",
        cutoff, limit,
    )
    return int(result.split()[-1])
