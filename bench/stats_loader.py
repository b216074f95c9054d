"""Loads a domain's click rollups straight into the stats tables, with SQL.

The statistics endpoints read rollups (and the raw click log, for last clicks), so what
their latency depends on is those rows: these are the rows the stats consumer would
have written for ``clicks`` clicks spread evenly (pseudo-randomly) over the links and the
last ``days`` days. Each click's dimension values are drawn independently (a hash of its
number), so an hour holds about as many combinations of them as clicks, as real traffic
with its many referers, campaigns and places does. This module follows the schema of
shared/migrations/02*.sql with the same grouping as the consumer's ``WRITE_CLICKS_SQL``:
when that schema changes, this is the one place to change.
"""

from __future__ import annotations

import asyncpg

from services.stats.repository import DAY_COLUMNS, HOUR_COLUMNS

RAW_DAYS = 30  # the raw click log's default retention (services.stats.settings)
VISITORS = 300_000  # distinct visitor hashes


def _pick(seed: int, values: tuple[str | None, ...]) -> str:
    """SQL: one of ``values`` for click ``g``, independent of the other picks."""
    items = ", ".join("NULL" if v is None else f"'{v}'" for v in values)
    return (f"(ARRAY[{items}]::text[])"
            f"[1 + (hashint8extended(g, {seed}) & 16777215) % {len(values)}]")


_REFERERS = ("google.com", "t.co", "facebook.com", "news.ycombinator.com", None, None)
_SOCIAL = """CASE referer_host WHEN 't.co' THEN 'twitter' WHEN 'facebook.com' THEN 'facebook'
             END"""
_CLICKS = f"""
CREATE TEMP TABLE bench_clicks ON COMMIT DROP AS
SELECT *, {_SOCIAL} AS social FROM (
SELECT g,
       links[1 + (hashint8extended(g, 9) & 16777215) % cardinality(links)] AS link_id,
       date_trunc('hour', now())
           - make_interval(hours => ((hashint8extended(g, 10) & 16777215) % ($2 * 24))::int)
           AS hour,
       (hashint8extended(g, 1) & 16777215) % 10 = 0 AS bot,
       {_pick(2, ("US", "DE", "FR", "GB", "IN", "BR", "JP"))} AS country,
       {_pick(3, ("Chrome", "Safari", "Firefox", "Edge"))} AS browser,
       {_pick(4, ("Windows", "iOS", "Android", "Mac OS X", "Linux"))} AS os,
       {_pick(5, ("desktop", "mobile", "tablet"))} AS device,
       {_pick(6, _REFERERS)} AS referer_host,
       {_pick(7, ("newsletter", "ads", None, None, None))} AS utm_source,
       'v' || (hashint8extended(g, 8) & 1048575) % $4 AS visitor
FROM generate_series(1, $1::bigint) AS g, (SELECT $3::bigint[] AS links) AS l) c
"""

_DAY = "(hour AT TIME ZONE 'UTC')::date"
_HR = "extract(hour FROM hour AT TIME ZONE 'UTC')::int"
_HOURS_BY_HR = ", ".join(f"coalesce(sum(n) FILTER (WHERE {_HR} = {h}), 0)"
                         for h in range(24))
_DAYS_UP_TO = ", ".join(f"coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= {d}), 0)"
                        for d in range(1, 32))
_DIM_COLUMNS = ("country", "browser", "os", "device", "referer_host", "social", "utm_source")
_DIM_NAMES = {"referer_host": "referer"}
_DIMS = "bench_clicks CROSS JOIN LATERAL (VALUES {}) AS d(dim, value)".format(", ".join(
    f"('{_DIM_NAMES.get(c, c)}', {c})" for c in _DIM_COLUMNS))
_COLS = ", ".join(_DIM_COLUMNS)
# Any key unique per combination (the consumer's is services.stats.batch.combo_key).
_COMBO = f"hashtextextended(concat_ws('|', {_COLS}, bot), 0)"
_C_COLS = ", ".join(f"c.{col}" for col in _DIM_COLUMNS)

_ROLLUPS = (
    f"""INSERT INTO stats_facts (link_id, hour, combo, domain_id, {_COLS}, bot, clicks)
        SELECT link_id, hour, {_COMBO}, $1, {_COLS}, bot, count(*)
        FROM bench_clicks GROUP BY hour, link_id, {_COLS}, bot ORDER BY hour, link_id""",
    f"""INSERT INTO stats_link_monthly (domain_id, month, link_id, {", ".join(DAY_COLUMNS)})
        SELECT $1, date_trunc('month', day)::date, link_id, {_DAYS_UP_TO}
        FROM (SELECT link_id, {_DAY} AS day, count(*) AS clicks FROM bench_clicks
              GROUP BY 1, 2) d
        GROUP BY date_trunc('month', day)::date, link_id ORDER BY 2, 3""",
    f"""INSERT INTO stats_link_totals (domain_id, link_id, clicks, human_clicks, days)
        SELECT $1, link_id, count(*), count(*) FILTER (WHERE NOT bot),
               range_agg(daterange({_DAY}, {_DAY} + 1))
        FROM bench_clicks GROUP BY link_id""",
    """INSERT INTO stats_domain_hourly (domain_id, hour, clicks, human_clicks)
       SELECT $1, hour, count(*), count(*) FILTER (WHERE NOT bot)
       FROM bench_clicks GROUP BY hour ORDER BY hour""",
    f"""INSERT INTO stats_domain_daily (domain_id, day, clicks, human_clicks)
        SELECT $1, {_DAY}, count(*), count(*) FILTER (WHERE NOT bot)
        FROM bench_clicks GROUP BY {_DAY}""",
    f"""INSERT INTO stats_domain_dims_daily (domain_id, dim, day, value, clicks,
                                             {", ".join(HOUR_COLUMNS)})
        SELECT $1, dim, {_DAY}, value, sum(n), {_HOURS_BY_HR}
        FROM (SELECT d.dim, hour, d.value, count(*) AS n FROM {_DIMS}
              WHERE d.value IS NOT NULL GROUP BY d.dim, hour, d.value) h
        GROUP BY dim, {_DAY}, value ORDER BY 3, 2, 4""",
    f"""INSERT INTO stats_domain_dims_totals (domain_id, dim, value, clicks)
        SELECT $1, d.dim, d.value, count(*) FROM {_DIMS}
        WHERE d.value IS NOT NULL GROUP BY d.dim, d.value""",
    f"""INSERT INTO stats_link_visitors (link_id, day, visitor)
        SELECT DISTINCT link_id, {_DAY}, visitor FROM bench_clicks ORDER BY 2, 1, 3""",
    # The raw log of the last RAW_DAYS days, in time order as the consumer appends it.
    f"""INSERT INTO stats_clicks (event_id, ts, link_id, domain_id, path, ip, user_agent,
                                  referer, {_COLS}, bot, visitor, combo)
        SELECT gen_random_uuid(), c.hour + make_interval(secs => (c.g * 13) % 3600),
               c.link_id, $1, coalesce(l.path, ''), '203.0.113.' || c.g % 250,
               c.browser || ' on ' || c.os,
               CASE WHEN c.referer_host IS NOT NULL THEN 'https://' || c.referer_host || '/'
               END,
               {_C_COLS}, c.bot, c.visitor, hashtextextended(concat_ws('|', {_C_COLS}, c.bot), 0)
        FROM bench_clicks c LEFT JOIN links l ON l.id = c.link_id
        WHERE c.hour >= now() - make_interval(days => {RAW_DAYS})
        ORDER BY c.hour""",
)
_TABLES = ("stats_facts", "stats_link_monthly", "stats_link_totals",
           "stats_domain_hourly", "stats_domain_daily", "stats_domain_dims_daily",
           "stats_domain_dims_totals", "stats_link_visitors", "stats_clicks")


async def load(conn: asyncpg.Connection, *, domain_id: int, link_ids: list[int], clicks: int,
               days: int) -> int:
    """One transaction: the rollups of ``clicks`` clicks of the domain's ``link_ids``;
    returns how many of them are in the raw click log."""
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(_CLICKS, clicks, days, link_ids, VISITORS)
        for statement in _ROLLUPS:
            await conn.execute(statement, *([domain_id] if "$1" in statement else []))
    # VACUUM as well: freshly inserted tables are what autovacuum visits next, and a visit
    # falling inside the measured calls would be timed with them; it also sets the
    # visibility map, as on tables that have been live for a while.
    await conn.execute(f"VACUUM (ANALYZE) {', '.join(_TABLES)}")
    raw: int = await conn.fetchval("SELECT count(*) FROM stats_clicks WHERE domain_id = $1",
                                   domain_id)
    return raw
