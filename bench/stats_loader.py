"""Loads a domain's click rollups straight into the stats tables, with SQL.

The statistics endpoints read rollups, never raw clicks, so what their latency depends
on is the rollup rows: these are the rows the stats consumer would have written for
``clicks`` clicks spread evenly (pseudo-randomly) over the links and the last ``days``
days. This module follows the schema of shared/migrations/02*.sql (facts per link and
per domain by hour, totals per link and per domain by UTC day and all time, breakdown
rows per dimension value by UTC day and all time), with the same grouping as the
consumer's ``WRITE_CLICKS_SQL``: when that schema changes, this is the one place to
change.
"""

from __future__ import annotations

import asyncpg

# The dimensions loaded, with the values cycled through (a click's value of each).
DIMENSIONS = {
    "country": ("US", "DE", "FR", "GB", "IN", "BR", "JP"),
    "browser": ("Chrome", "Safari", "Firefox", "Edge"),
    "os": ("Windows", "iOS", "Android", "Mac OS X", "Linux"),
    "device": ("desktop", "mobile", "tablet"),
}

_CLICKS = """
CREATE TEMP TABLE bench_clicks ON COMMIT DROP AS
SELECT links[1 + (g * 7919) % cardinality(links)] AS link_id,
       date_trunc('hour', now()) - make_interval(hours => ((g * 104729) % ($2 * 24))::int)
           AS hour,
       g % 10 = 0 AS bot,
       (ARRAY['US','DE','FR','GB','IN','BR','JP'])[1 + g % 7] AS country,
       (ARRAY['Chrome','Safari','Firefox','Edge'])[1 + g % 4] AS browser,
       (ARRAY['Windows','iOS','Android','Mac OS X','Linux'])[1 + g % 5] AS os,
       (ARRAY['desktop','mobile','tablet'])[1 + g % 3] AS device
FROM generate_series(1, $1::bigint) AS g, (SELECT $3::bigint[] AS links) AS l
"""

_DAY = "(hour AT TIME ZONE 'UTC')::date"
_DIMS = """bench_clicks CROSS JOIN LATERAL (VALUES ('country', country), ('browser', browser),
           ('os', os), ('device', device)) AS d(dim, value)"""

_COMBO = "hashtextextended(concat_ws('|', country, browser, os, device, bot), 0)"

_ROLLUPS = (
    # combo: any key unique per combination (the consumer's is services.stats.batch.combo_key).
    f"""INSERT INTO stats_facts (link_id, hour, combo, domain_id, country, browser, os, device,
                                 bot, clicks)
        SELECT link_id, hour, {_COMBO}, $1, country, browser, os, device, bot, count(*)
        FROM bench_clicks GROUP BY hour, link_id, country, browser, os, device, bot""",
    f"""INSERT INTO stats_domain_facts (domain_id, hour, combo, country, browser, os, device,
                                        bot, clicks)
        SELECT $1, hour, {_COMBO}, country, browser, os, device, bot, count(*)
        FROM bench_clicks GROUP BY hour, country, browser, os, device, bot""",
    f"""INSERT INTO stats_link_daily (link_id, day, domain_id, clicks, human_clicks)
        SELECT link_id, {_DAY}, $1, count(*), count(*) FILTER (WHERE NOT bot)
        FROM bench_clicks GROUP BY link_id, {_DAY}""",
    f"""INSERT INTO stats_link_totals (domain_id, link_id, clicks, human_clicks, days)
        SELECT $1, link_id, count(*), count(*) FILTER (WHERE NOT bot),
               range_agg(daterange({_DAY}, {_DAY} + 1))
        FROM bench_clicks GROUP BY link_id""",
    """INSERT INTO stats_domain_hourly (domain_id, hour, clicks, human_clicks)
       SELECT $1, hour, count(*), count(*) FILTER (WHERE NOT bot)
       FROM bench_clicks GROUP BY hour""",
    f"""INSERT INTO stats_domain_daily (domain_id, day, clicks, human_clicks)
        SELECT $1, {_DAY}, count(*), count(*) FILTER (WHERE NOT bot)
        FROM bench_clicks GROUP BY {_DAY}""",
    f"""INSERT INTO stats_domain_dims_daily (domain_id, dim, day, value, clicks)
        SELECT $1, d.dim, {_DAY}, d.value, count(*) FROM {_DIMS}
        GROUP BY d.dim, {_DAY}, d.value""",
    f"""INSERT INTO stats_domain_dims_totals (domain_id, dim, value, clicks)
        SELECT $1, d.dim, d.value, count(*) FROM {_DIMS}
        GROUP BY d.dim, d.value""",
)
_TABLES = ("stats_facts", "stats_domain_facts", "stats_link_daily", "stats_link_totals",
           "stats_domain_hourly", "stats_domain_daily", "stats_domain_dims_daily",
           "stats_domain_dims_totals")


async def load(conn: asyncpg.Connection, *, domain_id: int, link_ids: list[int], clicks: int,
               days: int) -> None:
    """One transaction: the rollups of ``clicks`` clicks of the domain's ``link_ids``."""
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(_CLICKS, clicks, days, link_ids)
        for statement in _ROLLUPS:
            await conn.execute(statement, domain_id)
    await conn.execute(f"ANALYZE {', '.join(_TABLES)}")
