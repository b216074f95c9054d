"""SQL of the stats consumer: consumed positions, the per-batch write, retention."""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any

from services.stats import link_sets
from services.stats.batch import CLICK_COLUMNS
from services.stats.spans import midnight

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
# (dimension, value) of a stats_facts row ``f``, as a VALUES list to unpivot it with.
FACT_DIMENSIONS = ", ".join(f"('{dim}', f.{col})" for dim, col in DIMENSION_COLUMNS.items())
_CLICK_TYPES = {
    "event_id": "uuid", "ts": "timestamptz", "link_id": "bigint", "domain_id": "bigint",
    "bot": "boolean", "combo": "bigint",
}
# The text columns travel as one string each, their values joined by a separator that
# Postgres splits again (string_to_array), rather than as text[] arrays: asyncpg checks
# every array element against three collections.abc classes before encoding it, about a
# third of a microsecond per value. For the ~16 text columns of a click, the consumer's
# CPU for a batch's write went from 6.9 to 3.6 us per event (measured on 2,500-event
# batches); that CPU is shared with Postgres on a small machine. A column whose values
# contain a separator or the NULL marker goes as an array, exactly as before.
_SEPARATOR, _NULL = "\x1f", "\x1e"
_PACKABLE = frozenset(name for name in CLICK_COLUMNS if name not in _CLICK_TYPES)
_SPLIT_ARGS = ", ".join(f"E'\\x{ord(c):02x}'" for c in (_SEPARATOR, _NULL))


def _unnest(packed: tuple[bool, ...]) -> str:
    return ", ".join(
        f"string_to_array(${i}, {_SPLIT_ARGS})" if is_packed
        else f"${i}::{_CLICK_TYPES.get(name, 'text')}[]"
        for i, (name, is_packed) in enumerate(zip(CLICK_COLUMNS, packed, strict=True), 1)
    )


def pack_text(column: list[str | None]) -> str | None:
    """The column's values as one string for :func:`_unnest`'s ``string_to_array``, or
    None when that would not give them back exactly (a value holding a separator or the
    NULL marker; a single empty string, which splits into no element at all)."""
    nones = column.count(None)
    text = _SEPARATOR.join([_NULL if v is None else v for v in column])
    if (text.count(_SEPARATOR) != len(column) - 1 or text.count(_NULL) != nones
            or not text):
        return None
    return text


# Every row of one combination has the same dimension values: min() just picks them.
_FIRST_FACTS = ", ".join(f"min({col}) AS {col}" for col in DIMENSION_COLUMNS.values())
_DIM_VALUES = ", ".join(f"('{dim}', c.{col})" for dim, col in DIMENSION_COLUMNS.items())


_HUMAN = "coalesce(sum(clicks) FILTER (WHERE NOT bot), 0)"
# The hour columns of stats_domain_dims_daily (clicks in UTC hour NN of the day) and the
# cumulative day columns of stats_link_monthly (clicks on days 1..NN of the month).
HOUR_COLUMNS = tuple(f"h{hour:02d}" for hour in range(24))
DAY_COLUMNS = tuple(f"c{day:02d}" for day in range(1, 32))
_HOURS = ", ".join(HOUR_COLUMNS)
_DAYS = ", ".join(DAY_COLUMNS)
_HOURS_BY_HR = ", ".join(f"coalesce(sum(clicks) FILTER (WHERE hr = {h}), 0)::int AS {c}"
                         for h, c in enumerate(HOUR_COLUMNS))
_C_HOURS = ", ".join(f"c.{c}" for c in HOUR_COLUMNS)
# The hours arrive as int (see below), so these sums add in 64 bits.
_SUM_HOURS = ", ".join(f"sum({c})" for c in HOUR_COLUMNS)
_DAYS_UP_TO = ", ".join(f"coalesce(sum(clicks) FILTER (WHERE mday <= {d}), 0)"
                        for d in range(1, 32))


def _add(*columns: str) -> str:
    return ", ".join(f"{c} = t.{c} + EXCLUDED.{c}" for c in columns)


# Counts inside the statement are int (a batch is far below 2**31 clicks): sum(int) adds
# in 64 bits, while sum(bigint) adds in numeric, several times slower per row and
# aggregate (the tables keep bigint).
# One statement per batch: insert the raw clicks, skipping events already stored
# (duplicates and replays: the same event_id, link and time; migration 0205), and fold
# only the rows actually inserted into every rollup. The inserted rows are first summed
# per (link, hour, combination), the grain of stats_facts, and every other rollup is
# summed from those sums (few rows per batch when clicks repeat, as real traffic does).
# GROUP BY makes each upsert touch a key once, as ON CONFLICT DO UPDATE requires. ORDER
# BY makes each upsert lock its rows in key order: partitions are written by concurrent
# transactions that share a domain's rows, and with one lock order they can wait for
# each other but not deadlock.
@functools.lru_cache(maxsize=64)  # one per mix of packed columns: almost always one
def _write_clicks_sql(packed: tuple[bool, ...]) -> str:
    return f"""
WITH new AS (
    INSERT INTO stats_clicks ({", ".join(CLICK_COLUMNS)})
    SELECT * FROM unnest({_unnest(packed)})
    ON CONFLICT (link_id, ts, event_id) DO NOTHING
    RETURNING link_id, domain_id, date_trunc('hour', ts, 'UTC') AS hour, {_FACT_COLUMNS},
              bot, visitor, combo, ts
),
f AS (
    SELECT link_id, hour, combo, min(domain_id) AS domain_id,
           (hour AT TIME ZONE 'UTC')::date AS day,
           extract(hour FROM hour AT TIME ZONE 'UTC')::int AS hr,
           extract(day FROM hour AT TIME ZONE 'UTC')::int AS mday,
           {_FIRST_FACTS}, bool_or(bot) AS bot, count(*)::int AS clicks
    FROM new GROUP BY link_id, hour, combo
),
facts AS (
    INSERT INTO stats_facts AS t (link_id, hour, combo, domain_id, {_FACT_COLUMNS}, bot, clicks)
    SELECT link_id, hour, combo, domain_id, {_FACT_COLUMNS}, bot, clicks FROM f
    ORDER BY link_id, hour, combo
    ON CONFLICT (link_id, hour, combo) DO UPDATE SET {_add("clicks")}
),
link_monthly AS (
    INSERT INTO stats_link_monthly AS t (domain_id, month, link_id, {_DAYS})
    SELECT domain_id, day - (mday - 1), link_id, {_DAYS_UP_TO}
    FROM f GROUP BY domain_id, day - (mday - 1), link_id ORDER BY 1, 2, 3
    ON CONFLICT (domain_id, month, link_id) DO UPDATE SET {_add(*DAY_COLUMNS)}
),
link_totals AS (
    INSERT INTO stats_link_totals AS t (domain_id, link_id, clicks, human_clicks, days)
    SELECT domain_id, link_id, sum(clicks), {_HUMAN},
           range_agg(daterange(day, day + 1))
    FROM f GROUP BY domain_id, link_id ORDER BY domain_id, link_id
    ON CONFLICT (domain_id, link_id) DO UPDATE
       SET {_add("clicks", "human_clicks")}, days = t.days + EXCLUDED.days
),
domain_hourly AS (
    INSERT INTO stats_domain_hourly AS t (domain_id, hour, clicks, human_clicks)
    SELECT domain_id, hour, sum(clicks), {_HUMAN}
    FROM f GROUP BY domain_id, hour ORDER BY domain_id, hour
    ON CONFLICT (domain_id, hour) DO UPDATE SET {_add("clicks", "human_clicks")}
),
domain_daily AS (
    INSERT INTO stats_domain_daily AS t (domain_id, day, clicks, human_clicks)
    SELECT domain_id, day, sum(clicks), {_HUMAN}
    FROM f GROUP BY domain_id, day ORDER BY domain_id, day
    ON CONFLICT (domain_id, day) DO UPDATE SET {_add("clicks", "human_clicks")}
),
day_combos AS (
    SELECT domain_id, day, {_FIRST_FACTS}, sum(clicks)::int AS clicks, {_HOURS_BY_HR}
    FROM f GROUP BY domain_id, day, combo
),
dims AS (
    SELECT c.domain_id, c.day, d.dim, d.value, c.clicks, {_C_HOURS}
    FROM day_combos c CROSS JOIN LATERAL (VALUES {_DIM_VALUES}) AS d(dim, value)
    WHERE d.value IS NOT NULL
),
domain_dims_daily AS (
    INSERT INTO stats_domain_dims_daily AS t (domain_id, dim, day, value, clicks, {_HOURS})
    SELECT domain_id, dim, day, value, sum(clicks), {_SUM_HOURS} FROM dims
    GROUP BY domain_id, dim, day, value ORDER BY domain_id, dim, day, value
    ON CONFLICT (domain_id, dim, day, value) DO UPDATE SET {_add("clicks", *HOUR_COLUMNS)}
),
domain_dims_totals AS (
    INSERT INTO stats_domain_dims_totals AS t (domain_id, dim, value, clicks)
    SELECT domain_id, dim, value, sum(clicks) FROM dims
    GROUP BY domain_id, dim, value ORDER BY domain_id, dim, value
    ON CONFLICT (domain_id, dim, value) DO UPDATE SET {_add("clicks")}
),
visitors AS (
    INSERT INTO stats_link_visitors (link_id, day, visitor)
    SELECT DISTINCT link_id, (ts AT TIME ZONE 'UTC')::date, visitor
    FROM new WHERE visitor IS NOT NULL ORDER BY 1, 2, 3
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


async def lock_offset(conn: Any, group: str, topic: str, partition: int) -> int:
    """The stored next offset of ``partition``, row-locked until the transaction ends.

    The lock fences a consumer that lost the partition in a rebalance but still holds a
    batch: it waits, then sees the new owner's position and skips what is counted. Each
    transaction locks one partition's row, so partitions never wait for each other here.
    """
    position: int = await conn.fetchval(
        """INSERT INTO stats_offsets (consumer_group, topic, partition, next_offset)
           VALUES ($1, $2, $3, 0)
           ON CONFLICT (consumer_group, topic, partition)
              DO UPDATE SET next_offset = stats_offsets.next_offset
           RETURNING next_offset""",
        group, topic, partition,
    )
    return position


async def store_offset(conn: Any, group: str, topic: str, partition: int,
                       next_offset: int) -> None:
    await conn.execute(
        """UPDATE stats_offsets SET next_offset = $4
           WHERE consumer_group = $1 AND topic = $2 AND partition = $3""",
        group, topic, partition, next_offset,
    )


async def write_clicks(conn: Any, columns: list[list[Any]]) -> int:
    """Stores the clicks not stored before and adds them to every rollup; returns how
    many were new."""
    if not columns[0]:
        return 0
    args: list[Any] = []
    packed: list[bool] = []
    for name, column in zip(CLICK_COLUMNS, columns, strict=True):
        if column[0] is None and column.count(None) == len(column):
            # No value in any row (no UTM tags in the batch, say): one NULL, which
            # unnest pads with NULLs. Either form takes it; the usual one keeps the
            # statement's text (and its prepared plan) the same from batch to batch.
            args.append(None)
            packed.append(name in _PACKABLE)
            continue
        text = pack_text(column) if name in _PACKABLE else None
        args.append(column if text is None else text)
        packed.append(text is not None)
    inserted: int = await conn.fetchval(_write_clicks_sql(tuple(packed)), *args)
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


# Filter rollups (migration 0206), built per domain and UTC day (its hours up to a
# marker's ``through``) from the facts by services/stats/filter_rollups.py. The counts
# are summed as int: one day of one domain.
_PAIRS_SQL = f"""
INSERT INTO stats_domain_pairs_daily
    (domain_id, dim, value, day, by_dim, by_value, clicks, human_clicks)
SELECT $1, a.dim, a.value, $2, b.dim, b.value, sum(f.clicks::int),
       coalesce(sum(f.clicks::int) FILTER (WHERE NOT f.bot), 0)
FROM stats_facts f
CROSS JOIN LATERAL (VALUES {FACT_DIMENSIONS}) AS a(dim, value)
CROSS JOIN LATERAL (VALUES ('', ''), {FACT_DIMENSIONS}) AS b(dim, value)
WHERE f.domain_id = $1 AND f.hour >= $3 AND f.hour < $4
  AND a.value IS NOT NULL AND b.value IS NOT NULL AND a.dim <> b.dim
GROUP BY a.dim, a.value, b.dim, b.value
"""
_VALUE_LINKS_SQL = f"""
SELECT a.dim, a.value, array_agg(DISTINCT f.link_id) AS links
FROM stats_facts f CROSS JOIN LATERAL (VALUES {FACT_DIMENSIONS}) AS a(dim, value)
WHERE f.domain_id = $1 AND f.hour >= $2 AND f.hour < $3 AND a.value IS NOT NULL
GROUP BY a.dim, a.value
"""
# Every table of the filter rollups, keyed by domain and day: the markers first.
FILTER_ROLLUPS = ("stats_filter_days", "stats_domain_pairs_daily", "stats_domain_value_links")


def _day_end(day: str) -> str:
    """SQL: the UTC midnight that ends the date ``day``."""
    return f"({day} + 1)::timestamp AT TIME ZONE 'UTC'"


# The clicks that the hours of marker ``b`` (day ``d`` of stats_domain_daily) hold now:
# the day's own row once the marker covers the whole day, else its hours' rows.
MARKED_CLICKS_NOW = f"""CASE WHEN b.through = {_day_end("b.day")} THEN d.clicks
    ELSE (SELECT coalesce(sum(h.clicks), 0) FROM stats_domain_hourly h
          WHERE h.domain_id = b.domain_id AND h.hour >= b.day::timestamp AT TIME ZONE 'UTC'
            AND h.hour < b.through) END"""


async def stale_filter_days(conn: Any, closed: datetime, limit: int
                            ) -> list[tuple[int, date, datetime]]:
    """(domain, day, through) of up to ``limit`` days whose filter rollups should cover
    their hours up to ``through`` (the day's end, or ``closed`` for the day under way)
    but are missing, cover fewer hours, or miss clicks; newest first."""
    rows = await conn.fetch(
        f"""SELECT d.domain_id, d.day, least({_day_end("d.day")}, $1) AS through
            FROM stats_domain_daily d
            LEFT JOIN stats_filter_days b ON b.domain_id = d.domain_id AND b.day = d.day
            WHERE d.day::timestamp AT TIME ZONE 'UTC' < $1
              AND (b.day IS NULL OR b.through < least({_day_end("d.day")}, $1)
                   OR b.clicks <> {MARKED_CLICKS_NOW})
            ORDER BY d.day DESC, d.domain_id LIMIT $2""",
        closed, limit)
    return [(r["domain_id"], r["day"], r["through"]) for r in rows]


async def lock_filter_day(conn: Any, domain_id: int, day: date, through: datetime
                          ) -> int | None:
    """In a repeatable-read transaction: the clicks of the day's hours before
    ``through``, with their hourly rows locked against changes until the transaction
    ends (a clear of a link's statistics then deletes the marker this transaction
    writes, rather than racing it); None when they hold no clicks or another process is
    building the day."""
    claimed = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)",
                                  domain_id, day.toordinal())
    if not claimed:
        return None
    rows = await conn.fetch(
        """SELECT clicks FROM stats_domain_hourly
           WHERE domain_id = $1 AND hour >= $2 AND hour < $3 FOR SHARE""",
        domain_id, midnight(day), through)
    return sum(r["clicks"] for r in rows) or None


async def write_filter_day(conn: Any, domain_id: int, day: date, through: datetime,
                           clicks: int) -> None:
    """Replaces the day's filter rollups with what its facts before ``through`` hold now,
    and marks them with ``clicks`` (read in the same snapshot by
    :func:`lock_filter_day`)."""
    for table in FILTER_ROLLUPS:
        await conn.execute(f"DELETE FROM {table} WHERE domain_id = $1 AND day = $2",
                           domain_id, day)
    await conn.execute(_PAIRS_SQL, domain_id, day, midnight(day), through)
    rows = await conn.fetch(_VALUE_LINKS_SQL, domain_id, midnight(day), through)
    bitmaps = [link_sets.encode(r["links"]) for r in rows]
    await conn.execute(
        """INSERT INTO stats_domain_value_links (domain_id, dim, value, day, first_link, links)
           SELECT $1, x.dim, x.value, $2, x.first_link, x.links
           FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bytea[])
                AS x(dim, value, first_link, links)""",
        domain_id, day, [r["dim"] for r in rows], [r["value"] for r in rows],
        [first for first, _ in bitmaps], [bits for _, bits in bitmaps])
    await conn.execute(
        """INSERT INTO stats_filter_days (domain_id, day, through, clicks)
           VALUES ($1, $2, $3, $4)""",
        domain_id, day, through, clicks)


# Month carry (migration 0207): the previous month's cumulative day columns copied into
# each link's row of a month by services/stats/month_carry.py.
CARRY_COLUMNS = tuple(f"p{day:02d}" for day in range(1, 32))


def previous_month_clicks(domain: str, month: str) -> str:
    """SQL: the clicks the rollups hold now for the month before the month ``month``
    (a date, the first of its month) of domain ``domain``."""
    return f"""(SELECT coalesce(sum(d.clicks), 0) FROM stats_domain_daily d
               WHERE d.domain_id = {domain} AND d.day < {month}
                 AND d.day >= ({month} - interval '1 month')::date)"""


async def stale_carry_months(conn: Any, month: date, limit: int) -> list[tuple[int, date]]:
    """(domain, month) of up to ``limit`` months up to ``month`` whose rows should carry a
    previous month with clicks but carry none, or miss clicks of it; newest first."""
    rows = await conn.fetch(
        """SELECT p.domain_id, p.month
           FROM (SELECT domain_id, (date_trunc('month', day) + interval '1 month')::date
                            AS month, sum(clicks) AS clicks
                 FROM stats_domain_daily GROUP BY 1, 2) p
           LEFT JOIN stats_month_carry m ON m.domain_id = p.domain_id AND m.month = p.month
           WHERE p.month <= $1 AND m.clicks IS DISTINCT FROM p.clicks
           ORDER BY p.month DESC, p.domain_id LIMIT $2""",
        month, limit)
    return [(r["domain_id"], r["month"]) for r in rows]


async def lock_carries(conn: Any, domain_id: int, wait: bool = True) -> bool:
    """Takes the domain's carry lock until the transaction ends (False: another holds it
    and ``wait`` is false). A copy and a clear of the domain's statistics take it, so a
    clear never runs inside a copy's snapshot and then sees its marker written after
    the clear deleted it: a marker that outlived the clicks taken out could match the
    previous month's clicks again once late clicks made up for them. (Two int keys,
    the second 0: the filter rollups lock (domain, day's ordinal), never 0.)"""
    if wait:
        await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", domain_id)
        return True
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, 0)", domain_id))


_ZERO_DAYS = ", ".join("0" for _ in DAY_COLUMNS)
_CARRIED = ", ".join(CARRY_COLUMNS)
_SET_CARRIED = ", ".join(f"{p} = EXCLUDED.{p}" for p in CARRY_COLUMNS)
_CARRY_SQL = f"""
WITH previous AS (
    SELECT link_id, {_DAYS} FROM stats_link_monthly
    WHERE domain_id = $1 AND month = ($2::date - interval '1 month')::date
      AND c31 > 0  -- clicked that month: not a copy's row only (no chain of empty rows)
),
carried AS (
    INSERT INTO stats_link_monthly AS t (domain_id, month, link_id, {_DAYS}, {_CARRIED})
    SELECT $1, $2::date, link_id, {_ZERO_DAYS}, {_DAYS} FROM previous ORDER BY link_id
    ON CONFLICT (domain_id, month, link_id) DO UPDATE SET {_SET_CARRIED}
    WHERE ({", ".join(f"t.{p}" for p in CARRY_COLUMNS)})
          IS DISTINCT FROM ({", ".join(f"EXCLUDED.{p}" for p in CARRY_COLUMNS)})
)
INSERT INTO stats_month_carry AS m (domain_id, month, clicks)
VALUES ($1, $2::date, {previous_month_clicks("$1", "$2::date")})
ON CONFLICT (domain_id, month) DO UPDATE SET clicks = EXCLUDED.clicks, built_at = now()
"""


async def carry_month(conn: Any, domain_id: int, month: date) -> None:
    """Copies the previous month's day columns of the domain's links into their rows of
    ``month`` (rows written only where the copy changes) and marks the copy with the
    previous month's clicks, all in one statement: one snapshot for the rows copied and
    the clicks marked, whatever the consumer commits meanwhile."""
    await conn.execute(_CARRY_SQL, domain_id, month)
