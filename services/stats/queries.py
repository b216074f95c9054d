"""SQL of the statistics API: reads of the rollups (never of the raw click log, except
``last_clicks``, which reads it newest first by index) and clearing statistics.

A period is read as :class:`services.stats.spans.Spans`: whole UTC days from the daily
rollups, cut days hour by hour, or the all-time totals when it holds every click. Chart
buckets are found in SQL (``width_bucket`` over the bucket bounds computed in Python),
so no per-hour work happens in Python. Unfiltered domain answers come from the domain
rollups (totals and one row per dimension value); link breakdowns and every answer with
include/exclude filters come from ``stats_facts``, which keeps every dimension of a
click together per link and hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.stats.repository import DIMENSION_COLUMNS
from services.stats.spans import Spans

_UNPIVOT = ", ".join(f"('{dim}', f.{col})" for dim, col in DIMENSION_COLUMNS.items())
_UNPIVOT_R = _UNPIVOT.replace("f.", "r.")


@dataclass(frozen=True)
class Scope:
    """A domain, or one link of it."""

    domain_id: int
    link_id: int | None = None


@dataclass(frozen=True)
class Filters:
    """include/exclude: raw-click column -> values; human: only humans (True) or only
    bots (False); link ids stand for paths."""

    include: dict[str, list[str]] = field(default_factory=dict)
    exclude: dict[str, list[str]] = field(default_factory=dict)
    human: bool | None = None
    include_links: list[int] | None = None
    exclude_links: list[int] | None = None

    @property
    def empty(self) -> bool:
        return (not self.include and not self.exclude and self.human is None
                and self.include_links is None and self.exclude_links is None)


class _Args:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _facts(scope: Scope, filters: Filters) -> str:
    """The fact table answering ``filters`` for ``scope`` (read as ``f``): the domain's
    (rows per hour and combination) unless links are involved."""
    if (scope.link_id is not None or filters.include_links is not None
            or filters.exclude_links is not None):
        return "stats_facts f"
    return "stats_domain_facts f"


def _facts_where(args: _Args, scope: Scope, lo: datetime, hi: datetime, filters: Filters
                 ) -> str:
    where = [f"f.domain_id = {args(scope.domain_id)}",
             f"f.hour >= {args(lo)}", f"f.hour < {args(hi)}"]
    if scope.link_id is not None:
        where.insert(0, f"f.link_id = {args(scope.link_id)}")
    allowed = set(DIMENSION_COLUMNS.values())
    for column, values in filters.include.items():
        assert column in allowed  # column names come from a fixed table, never a caller
        where.append(f"f.{column} = ANY({args(values)}::text[])")
    for column, values in filters.exclude.items():
        assert column in allowed
        where.append(f"coalesce(f.{column} <> ALL({args(values)}::text[]), true)")
    if filters.human is not None:
        where.append(f"f.bot = {args(not filters.human)}")
    if filters.include_links is not None:
        where.append(f"f.link_id = ANY({args(filters.include_links)}::bigint[])")
    if filters.exclude_links is not None:
        where.append(f"f.link_id <> ALL({args(filters.exclude_links)}::bigint[])")
    return " AND ".join(where)


async def link_by_id_string(conn: Any, id_string: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, domain_id, team_id, path FROM links WHERE id_string = $1", id_string
    )
    return row


async def domain_team(conn: Any, domain_id: int) -> int | None:
    team: int | None = await conn.fetchval("SELECT team_id FROM domains WHERE id = $1",
                                           domain_id)
    return team


async def links_by_id_strings(conn: Any, domain_id: int, id_strings: list[str]
                              ) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT id_string, id FROM links WHERE domain_id = $1 AND id_string = ANY($2::text[])",
        domain_id, id_strings,
    )
    return {r["id_string"]: r["id"] for r in rows}


async def links_by_paths(conn: Any, domain_id: int, paths: list[str]) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM links WHERE domain_id = $1 AND (path = ANY($2::text[])"
        " OR path_key = ANY($2::text[]))",
        domain_id, paths,
    )
    return [r["id"] for r in rows]


async def data_hours(conn: Any, scope: Scope) -> tuple[datetime | None, datetime | None]:
    """The first and last UTC hour with clicks of the scope (None, None without any)."""
    if scope.link_id is not None:
        sql = "SELECT min(hour), max(hour) FROM stats_facts WHERE link_id = $1"
        arg = scope.link_id
    else:
        sql = "SELECT min(hour), max(hour) FROM stats_domain_hourly WHERE domain_id = $1"
        arg = scope.domain_id
    row = await conn.fetchrow(sql, arg)
    return row[0], row[1]


@dataclass(frozen=True)
class _Grain:
    """How one rollup table gives rows over a range of its time column: read as ``r``
    (and ``d``, one row per dimension value, when ``unpivot``), yielding ``columns``
    where ``where`` holds."""

    table: str
    time: str  # "hour" or "day"
    columns: str
    where: str
    unpivot: bool = False


def _rows_in(args: _Args, spans: Spans, hourly: _Grain, daily: _Grain) -> str:
    """The rows of ``spans`` as ``(t, columns)``: the hours from ``hourly``, the whole
    days from ``daily`` (``t``: the hour, or the day's UTC midnight). Each span is one
    index range scan."""
    parts = []
    for grain, ranges, kind in ((hourly, spans.hours, "timestamptz"),
                                (daily, spans.days, "date")):
        if not ranges:
            continue
        lo, hi = args([a for a, _ in ranges]), args([b for _, b in ranges])
        t = "r.hour" if grain.time == "hour" else "r.day::timestamp AT TIME ZONE 'UTC'"
        lateral = (f" CROSS JOIN LATERAL (VALUES {_UNPIVOT_R}) AS d(dim, value)"
                   if grain.unpivot else "")
        parts.append(
            f"""SELECT {t} AS t, {grain.columns}
                FROM unnest({lo}::{kind}[], {hi}::{kind}[]) AS s(lo, hi)
                JOIN {grain.table} r ON r.{grain.time} >= s.lo AND r.{grain.time} < s.hi
                {lateral}
                WHERE {grain.where}""")
    if not parts:
        parts.append(f"""SELECT NULL::timestamptz AS t, {daily.columns}
                         FROM {daily.table} r WHERE false""")
    return "\nUNION ALL\n".join(parts)


def _totals_of(args: _Args, scope: Scope) -> tuple[_Grain, _Grain]:
    """A link's or a domain's (clicks, human_clicks) per hour and per day."""
    if scope.link_id is not None:
        link = f"r.link_id = {args(scope.link_id)}"
        return (_Grain("stats_facts", "hour",
                       "r.clicks, CASE WHEN r.bot THEN 0 ELSE r.clicks END AS human_clicks",
                       link),
                _Grain("stats_link_daily", "day", "r.clicks, r.human_clicks", link))
    domain = f"r.domain_id = {args(scope.domain_id)}"
    columns = "r.clicks, r.human_clicks"
    return (_Grain("stats_domain_hourly", "hour", columns, domain),
            _Grain("stats_domain_daily", "day", columns, domain))


def _dims_of(args: _Args, domain_id: int, dims: list[str], values: list[str] | None
             ) -> tuple[_Grain, _Grain]:
    """A domain's (dim, value, clicks) per hour (from its facts) and per day."""
    domain, wanted = args(domain_id), args(dims)
    hourly = f"r.domain_id = {domain} AND d.value IS NOT NULL AND d.dim = ANY({wanted}::text[])"
    daily = f"r.domain_id = {domain} AND r.dim = ANY({wanted}::text[])"
    if values is not None:
        chosen = args(values)
        hourly += f" AND d.value = ANY({chosen}::text[])"
        daily += f" AND r.value = ANY({chosen}::text[])"
    return (_Grain("stats_domain_facts", "hour", "d.dim, d.value, r.clicks", hourly,
                   unpivot=True),
            _Grain("stats_domain_dims_daily", "day", "r.dim, r.value, r.clicks", daily))


def _links_of(args: _Args, domain_id: int, link_ids: list[int] | None
              ) -> tuple[_Grain, _Grain]:
    """(link_id, clicks) of the domain's links (or of ``link_ids``) per hour and day."""
    where = f"r.domain_id = {args(domain_id)}"
    if link_ids is not None:
        where += f" AND r.link_id = ANY({args(link_ids)}::bigint[])"
    return (_Grain("stats_facts", "hour", "r.link_id, r.clicks", where),
            _Grain("stats_link_daily", "day", "r.link_id, r.clicks", where))


def _bucket(args: _Args, bounds: list[datetime]) -> str:
    """The chart bucket of ``x.t``: 1 for the first (``bounds`` from
    ``periods.bucket_bounds``); 0 for rows before the first bucket (a previous period)."""
    placeholder = args(bounds[:-1] or [datetime(1970, 1, 1, tzinfo=UTC)])
    return f"width_bucket(x.t, {placeholder}::timestamptz[])"


async def clicks_by_bucket(conn: Any, scope: Scope, current: Spans, previous: Spans | None,
                           bounds: list[datetime], filters: Filters
                           ) -> dict[int, tuple[int, int]]:
    """{bucket: (clicks, human clicks)} of ``current`` in the chart buckets (1-based, see
    :func:`_bucket`), and of ``previous`` (the period before) as bucket 0."""
    args = _Args()
    if filters.empty:
        hourly, daily = _totals_of(args, scope)
        source = _rows_in(args, current, hourly, daily)
        if previous is not None:
            source += "\nUNION ALL\n" + _rows_in(args, previous, hourly, daily)
    else:
        lo = previous.lo if previous is not None else current.lo
        where = _facts_where(args, scope, lo, current.hi, filters)
        source = f"""SELECT f.hour AS t, f.clicks,
                            CASE WHEN f.bot THEN 0 ELSE f.clicks END AS human_clicks
                     FROM {_facts(scope, filters)} WHERE {where}"""
    sql = f"""SELECT CASE WHEN x.t < {args(current.lo)} THEN 0 ELSE {_bucket(args, bounds)} END
                       AS bucket,
                     sum(x.clicks)::bigint AS clicks, sum(x.human_clicks)::bigint AS human
              FROM ({source}) x GROUP BY 1"""
    return {r["bucket"]: (r["clicks"], r["human"]) for r in await conn.fetch(sql, *args.values)}


def _ranked(source: str, args: _Args, limit: int) -> str:
    return f"""
        SELECT dim, value, clicks FROM (
            SELECT dim, value, sum(clicks)::bigint AS clicks,
                   row_number() OVER (PARTITION BY dim ORDER BY sum(clicks) DESC, value)
                     AS rank
            FROM ({source}) x GROUP BY dim, value) ranked
        WHERE rank <= {args(limit)}
        ORDER BY dim, clicks DESC, value"""


async def breakdowns(conn: Any, scope: Scope, spans: Spans, dims: list[str], limit: int,
                     filters: Filters) -> dict[str, list[tuple[str, int]]]:
    """The top ``limit`` values of each dimension in ``dims``, by clicks."""
    args = _Args()
    if filters.empty and scope.link_id is None and spans.whole:
        source = f"""SELECT r.dim, r.value, r.clicks FROM stats_domain_dims_totals r
                     WHERE r.domain_id = {args(scope.domain_id)}
                       AND r.dim = ANY({args(dims)}::text[])"""
    elif filters.empty and scope.link_id is None:
        source = _rows_in(args, spans, *_dims_of(args, scope.domain_id, dims, None))
    else:
        where = _facts_where(args, scope, spans.lo, spans.hi, filters)
        source = f"""SELECT d.dim, d.value, f.clicks
                     FROM {_facts(scope, filters)}
                     CROSS JOIN LATERAL (VALUES {_UNPIVOT}) AS d(dim, value)
                     WHERE {where} AND d.value IS NOT NULL
                       AND d.dim = ANY({args(dims)}::text[])"""
    result: dict[str, list[tuple[str, int]]] = {dim: [] for dim in dims}
    for row in await conn.fetch(_ranked(source, args, limit), *args.values):
        result[row["dim"]].append((row["value"], row["clicks"]))
    return result


async def value_series(conn: Any, scope: Scope, dim: str, values: list[str], spans: Spans,
                       bounds: list[datetime], filters: Filters
                       ) -> list[tuple[str, int, int]]:
    """(value, chart bucket, clicks) of the given values of one dimension."""
    args = _Args()
    if filters.empty:
        source = _rows_in(args, spans, *_dims_of(args, scope.domain_id, [dim], values))
    else:
        column = DIMENSION_COLUMNS[dim]
        where = _facts_where(args, scope, spans.lo, spans.hi, filters)
        source = f"""SELECT f.hour AS t, f.{column} AS value, f.clicks
                     FROM {_facts(scope, filters)}
                     WHERE {where} AND f.{column} = ANY({args(values)}::text[])"""
    sql = f"""SELECT x.value, {_bucket(args, bounds)} AS bucket, sum(x.clicks)::bigint AS clicks
              FROM ({source}) x GROUP BY 1, 2"""
    return [(r["value"], r["bucket"], r["clicks"]) for r in await conn.fetch(sql, *args.values)]


def _link_clicks(args: _Args, domain_id: int, spans: Spans, link_ids: list[int] | None) -> str:
    """(link_id, clicks) rows of the domain's links (or of ``link_ids``) in ``spans``."""
    if spans.whole:
        where = f"r.domain_id = {args(domain_id)}"
        if link_ids is not None:
            where += f" AND r.link_id = ANY({args(link_ids)}::bigint[])"
        return f"SELECT r.link_id, r.clicks FROM stats_link_totals r WHERE {where}"
    return _rows_in(args, spans, *_links_of(args, domain_id, link_ids))


async def top_links(conn: Any, domain_id: int, spans: Spans, limit: int, filters: Filters
                    ) -> list[tuple[int, str, int]]:
    """(link id, path, clicks) of the most clicked links of a domain."""
    args = _Args()
    if filters.empty and spans.whole:  # one row per link already
        inner = f"""SELECT link_id, clicks FROM stats_link_totals
                    WHERE domain_id = {args(domain_id)}"""
    elif filters.empty:
        inner = f"""SELECT link_id, sum(clicks)::bigint AS clicks
                    FROM ({_link_clicks(args, domain_id, spans, None)}) x GROUP BY link_id"""
    else:
        where = _facts_where(args, Scope(domain_id), spans.lo, spans.hi, filters)
        inner = f"""SELECT f.link_id, sum(f.clicks)::bigint AS clicks FROM stats_facts f
                    WHERE {where} GROUP BY f.link_id"""
    rows = await conn.fetch(
        f"""SELECT t.link_id, coalesce(l.path, '') AS path, t.clicks
            FROM (SELECT * FROM ({inner}) t ORDER BY t.clicks DESC, t.link_id
                  LIMIT {args(limit)}) t
            LEFT JOIN links l ON l.id = t.link_id
            ORDER BY t.clicks DESC, t.link_id""",
        *args.values)
    return [(r["link_id"], r["path"], r["clicks"]) for r in rows]


async def link_series(conn: Any, domain_id: int, link_ids: list[int], spans: Spans,
                      bounds: list[datetime], filters: Filters) -> list[tuple[int, int, int]]:
    """(link id, chart bucket, clicks) of the given links."""
    args = _Args()
    if filters.empty:
        source = _rows_in(args, spans, *_links_of(args, domain_id, link_ids))
    else:
        where = _facts_where(args, Scope(domain_id), spans.lo, spans.hi, filters)
        source = f"""SELECT f.hour AS t, f.link_id, f.clicks FROM stats_facts f
                     WHERE {where} AND f.link_id = ANY({args(link_ids)}::bigint[])"""
    sql = f"""SELECT x.link_id, {_bucket(args, bounds)} AS bucket,
                     sum(x.clicks)::bigint AS clicks
              FROM ({source}) x GROUP BY 1, 2"""
    return [(r["link_id"], r["bucket"], r["clicks"]) for r in await conn.fetch(sql, *args.values)]


def _clicked_on(args: _Args, spans: Spans) -> str:
    """``t.days`` (the days a link was clicked on) meets a whole day of ``spans``: one
    range test per span (a multirange against a range costs half of one against a
    multirange)."""
    return " OR ".join(f"t.days && daterange({args(a)}::date, {args(b)}::date)"
                       for a, b in spans.days)


async def clicked_links(conn: Any, domain_id: int, periods: list[Spans], filters: Filters
                        ) -> list[int]:
    """How many distinct links of the domain were clicked in each of ``periods``, in one
    pass over the domain's links (one row each): a link counts when one of the days it
    was clicked on is a whole day of the period, or when it has clicks in the hours of
    the period's cut days."""
    if not filters.empty:
        counts = []
        for spans in periods:
            args = _Args()
            where = _facts_where(args, Scope(domain_id), spans.lo, spans.hi, filters)
            counts.append(await conn.fetchval(
                f"SELECT count(DISTINCT f.link_id) FROM stats_facts f WHERE {where}",
                *args.values))
        return counts
    args = _Args()
    domain = args(domain_id)

    def clicked_in(spans: Spans) -> str:
        if spans.whole:
            return "true"
        conditions = []
        if spans.days:
            conditions.append(_clicked_on(args, spans))
        if spans.hours:
            lo, hi = args([a for a, _ in spans.hours]), args([b for _, b in spans.hours])
            conditions.append(
                f"""t.link_id IN (SELECT r.link_id
                        FROM unnest({lo}::timestamptz[], {hi}::timestamptz[]) AS s(lo, hi)
                        JOIN stats_facts r ON r.domain_id = {domain}
                         AND r.hour >= s.lo AND r.hour < s.hi)""")
        return " OR ".join(conditions) or "false"

    counts_sql = ", ".join(f"count(*) FILTER (WHERE {clicked_in(spans)})" for spans in periods)
    row = await conn.fetchrow(
        f"SELECT {counts_sql} FROM stats_link_totals t WHERE t.domain_id = {domain}",
        *args.values)
    return list(row)


async def clicks_of_links(conn: Any, domain_id: int, link_ids: list[int], spans: Spans
                          ) -> dict[int, int]:
    args = _Args()
    rows = await conn.fetch(
        f"""SELECT link_id, sum(clicks)::bigint AS clicks
            FROM ({_link_clicks(args, domain_id, spans, link_ids)}) x GROUP BY link_id""",
        *args.values)
    return {r["link_id"]: r["clicks"] for r in rows}


async def unique_visitors(conn: Any, link_id: int, lo: datetime, hi: datetime) -> int:
    """Distinct visitor hashes over the UTC days overlapping ``[lo, hi)`` (exact)."""
    count: int = await conn.fetchval(
        """SELECT count(DISTINCT visitor) FROM stats_link_visitors
           WHERE link_id = $1 AND day >= ($2::timestamptz AT TIME ZONE 'UTC')::date
             AND day <= (($3::timestamptz - interval '1 microsecond')
                         AT TIME ZONE 'UTC')::date""",
        link_id, lo, hi)
    return count


_LAST_CLICK_COLUMNS = ("ts, link_id, path, ip, user_agent, referer, country, region, city, "
                       "browser, os, device, referer_host, social, utm_source, utm_medium, "
                       "utm_campaign, bot")


async def last_clicks(conn: Any, domain_id: int, *, limit: int, before: datetime | None,
                      after: datetime | None, link_id: int | None) -> list[asyncpg.Record]:
    """The newest raw clicks, read backwards along (domain_id, ts)."""
    args = _Args()
    where = [f"domain_id = {args(domain_id)}"]
    if before is not None:
        where.append(f"ts < {args(before)}")
    if after is not None:
        where.append(f"ts > {args(after)}")
    if link_id is not None:
        where.append(f"link_id = {args(link_id)}")
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_LAST_CLICK_COLUMNS} FROM stats_clicks WHERE {" AND ".join(where)}
            ORDER BY ts DESC LIMIT {args(limit)}""",
        *args.values)
    return rows


async def clear_domain(conn: Any, domain_id: int) -> None:
    """Deletes every statistic of a domain (call inside a transaction)."""
    await conn.execute(
        """DELETE FROM stats_link_visitors WHERE link_id IN
               (SELECT link_id FROM stats_link_totals WHERE domain_id = $1)""",
        domain_id)
    for table in ("stats_link_daily", "stats_link_totals", "stats_domain_hourly",
                  "stats_domain_daily", "stats_domain_facts", "stats_domain_dims_daily",
                  "stats_domain_dims_totals", "stats_facts", "stats_clicks"):
        await conn.execute(f"DELETE FROM {table} WHERE domain_id = $1", domain_id)


# One link's clicks per dimension value and UTC day (from its facts), to take out of its
# domain's dimension rollups.
_LINK_DIMS = f"""SELECT (f.hour AT TIME ZONE 'UTC')::date AS day, x.dim, x.value, f.clicks
                 FROM stats_facts f CROSS JOIN LATERAL (VALUES {_UNPIVOT}) AS x(dim, value)
                 WHERE f.link_id = $1 AND x.value IS NOT NULL"""


async def clear_link(conn: Any, domain_id: int, link_id: int) -> None:
    """Deletes one link's statistics and takes them out of its domain's rollups (call
    inside a transaction)."""
    await conn.execute(
        """UPDATE stats_domain_hourly d
           SET clicks = d.clicks - l.clicks, human_clicks = d.human_clicks - l.human_clicks
           FROM stats_link_hourly l
           WHERE l.link_id = $1 AND d.domain_id = $2 AND d.hour = l.hour""",
        link_id, domain_id)
    await conn.execute(
        """UPDATE stats_domain_daily d
           SET clicks = d.clicks - l.clicks, human_clicks = d.human_clicks - l.human_clicks
           FROM stats_link_daily l
           WHERE l.link_id = $1 AND d.domain_id = $2 AND d.day = l.day""",
        link_id, domain_id)
    await conn.execute(
        """UPDATE stats_domain_facts d SET clicks = d.clicks - l.clicks
           FROM (SELECT hour, combo, sum(clicks) AS clicks FROM stats_facts
                 WHERE link_id = $1 GROUP BY hour, combo) l
           WHERE d.domain_id = $2 AND d.hour = l.hour AND d.combo = l.combo""",
        link_id, domain_id)
    await conn.execute(
        f"""UPDATE stats_domain_dims_daily d SET clicks = d.clicks - l.clicks
            FROM (SELECT day, dim, value, sum(clicks) AS clicks FROM ({_LINK_DIMS}) x
                  GROUP BY day, dim, value) l
            WHERE d.domain_id = $2 AND d.dim = l.dim AND d.day = l.day AND d.value = l.value""",
        link_id, domain_id)
    await conn.execute(
        f"""UPDATE stats_domain_dims_totals d SET clicks = d.clicks - l.clicks
            FROM (SELECT dim, value, sum(clicks) AS clicks FROM ({_LINK_DIMS}) x
                  GROUP BY dim, value) l
            WHERE d.domain_id = $2 AND d.dim = l.dim AND d.value = l.value""",
        link_id, domain_id)
    for table in ("stats_domain_hourly", "stats_domain_daily", "stats_domain_facts",
                  "stats_domain_dims_daily", "stats_domain_dims_totals"):
        await conn.execute(f"DELETE FROM {table} WHERE domain_id = $1 AND clicks <= 0",
                           domain_id)
    for table in ("stats_link_daily", "stats_link_visitors"):
        await conn.execute(f"DELETE FROM {table} WHERE link_id = $1", link_id)
    for table in ("stats_link_totals", "stats_facts", "stats_clicks"):
        await conn.execute(f"DELETE FROM {table} WHERE domain_id = $1 AND link_id = $2",
                           domain_id, link_id)
