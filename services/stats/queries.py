"""SQL of the statistics API: reads of the rollups (never of the raw click log, except
``last_clicks``, which reads it newest first by index) and clearing statistics.

A period is read as :class:`services.stats.spans.Spans`: whole UTC days from the daily
rollups, cut days hour by hour, or the all-time totals when it holds every click. Chart
buckets are found in SQL (``width_bucket`` over the bucket bounds computed in Python),
so no per-hour work happens in Python. Unfiltered domain answers come from the domain
rollups (totals, and one row per dimension value and day whose hour columns are added
up in SQL for the days a period or a chart bucket cuts); link breakdowns and every answer with
include/exclude filters come from ``stats_facts``, which keeps every dimension of a
click together per link and hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from services.stats import link_sets
from services.stats.repository import (
    CARRY_COLUMNS,
    DAY_COLUMNS,
    DIMENSION_COLUMNS,
    FACT_DIMENSIONS,
    FILTER_ROLLUPS,
    HOUR_COLUMNS,
    MARKED_CLICKS_NOW,
    lock_carries,
    previous_month_clicks,
)
from services.stats.spans import Spans, day_hours, midnight, split


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


# Every connection of the stats pool starts with these (services.stats.app; nothing
# changes them later, see shared.resources.keep_session): the answers' statements are
# short, and the planner's defaults cost them more than they save. A generic plan
# (chosen after five runs of a prepared statement) knows neither the domain nor the
# ranges and scans whole tables; JIT compiles for tens of ms; parallel workers start
# processes that two cores have no room for. The rollups a read touches are expected in
# memory, so an index scan's page costs about what a sequential one does
# (random_page_cost 1.1, as for SSDs): with the default 4, a month of a domain holding a
# quarter of stats_link_monthly was read by a sequential scan of every row, and smaller
# shares by bitmap scans some 20 % slower than the index scans they stand for. The
# consumer's batch write, on the same pool, costs no more per event with them (measured;
# its plan is the same with random_page_cost 1.1).
READ_SETTINGS = {"plan_cache_mode": "force_custom_plan", "jit": "off",
                 "max_parallel_workers_per_gather": "0", "random_page_cost": "1.1"}


class _Args:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


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


@dataclass(frozen=True)
class Domain:
    """A domain's owner, with what most answers about it read next: the first and last
    UTC hour with clicks (None, None without any) and the lowest and highest id of its
    clicked links (None without any)."""

    id: int
    team_id: int
    data: tuple[datetime | None, datetime | None]
    link_ids: tuple[int, int] | None


async def domain(conn: Any, domain_id: int) -> Domain | None:
    """The domain in one statement, not three: each is a round trip that every answer
    about a domain waits for (its index probes cost Postgres a few microseconds). The
    link ids are given to the ranking statements as values rather than found by a
    subquery of theirs: the planner then knows how many rows a range holds (for a
    subquery's bounds it guesses a few, and reads the cut hours' facts along the range's
    link ids, every hour of each, instead of along the domain's hours: 34 ms instead of
    1)."""
    row = await conn.fetchrow(
        """SELECT d.team_id,
                  (SELECT min(hour) FROM stats_domain_hourly WHERE domain_id = d.id),
                  (SELECT max(hour) FROM stats_domain_hourly WHERE domain_id = d.id),
                  (SELECT min(link_id) FROM stats_link_totals WHERE domain_id = d.id),
                  (SELECT max(link_id) FROM stats_link_totals WHERE domain_id = d.id)
           FROM domains d WHERE d.id = $1""",
        domain_id)
    if row is None:
        return None
    team_id, first, last, low, high = row
    return Domain(domain_id, team_id, (first, last), None if low is None else (low, high))


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


async def link_data_hours(conn: Any, link_id: int) -> tuple[datetime | None, datetime | None]:
    """The first and last UTC hour with clicks of a link (None, None without any); a
    domain's come with it (:func:`domain`)."""
    row = await conn.fetchrow(
        "SELECT min(hour), max(hour) FROM stats_facts WHERE link_id = $1", link_id)
    return row[0], row[1]


@dataclass(frozen=True)
class _Grain:
    """How one rollup table gives rows over ranges of time: read as ``r``, yielding
    ``keys`` (grouped by) and ``sums`` (summed: negated where subtracted), each an
    ``expression AS name``, where ``where`` holds."""

    table: str
    time: str  # "hour" or "day"
    keys: tuple[str, ...]
    sums: tuple[str, ...]
    where: str

    def select(self, at: str, sign: int) -> str:
        sums = self.sums if sign > 0 else tuple(
            f"-({expression}) AS {name}"
            for expression, name in (s.rsplit(" AS ", 1) for s in self.sums))
        return ", ".join((f"{at} AS t", *self.keys, *sums))


def _hour_rows(args: _Args, grain: _Grain, ranges: list[tuple[datetime, datetime]],
               ats: list[datetime] | None, sign: int) -> str:
    """The hourly rows of ``ranges`` (counted at their hour, or at ``ats``), each range
    one index range scan (``OFFSET 0`` keeps the planner from flattening the lateral
    subquery into one scan of the whole domain)."""
    lo, hi = args([a for a, _ in ranges]), args([b for _, b in ranges])
    at_arg = args(ats if ats is not None else [None] * len(ranges))
    return f"""SELECT {grain.select("coalesce(s.at, r.hour)", sign)}
        FROM unnest({lo}::timestamptz[], {hi}::timestamptz[], {at_arg}::timestamptz[])
             AS s(lo, hi, at)
        CROSS JOIN LATERAL (SELECT * FROM {grain.table} r
                            WHERE r.hour >= s.lo AND r.hour < s.hi AND {grain.where}
                            OFFSET 0) r"""


def _day_rows(args: _Args, grain: _Grain, days: list[date], ats: list[datetime] | None
              ) -> str:
    """The daily rows of ``days``, counted at their UTC midnight or at ``ats``."""
    at_arg = args(ats if ats is not None else [None] * len(days))
    return f"""SELECT {grain.select("coalesce(s.at, r.day::timestamp AT TIME ZONE 'UTC')", 1)}
        FROM unnest({args(days)}::date[], {at_arg}::timestamptz[]) AS s(day, at)
        JOIN {grain.table} r ON r.day = s.day
        WHERE {grain.where}"""


def _whole_days(args: _Args, grain: _Grain, ranges: list[tuple[date, date]]) -> str:
    lo, hi = args([a for a, _ in ranges]), args([b for _, b in ranges])
    return f"""SELECT {grain.select("r.day::timestamp AT TIME ZONE 'UTC'", 1)}
        FROM unnest({lo}::date[], {hi}::date[]) AS s(lo, hi)
        CROSS JOIN LATERAL (SELECT * FROM {grain.table} r
                            WHERE r.day >= s.lo AND r.day < s.hi AND {grain.where}
                            OFFSET 0) r"""


def _rows_in(args: _Args, spans: Spans, hourly: _Grain, daily: _Grain) -> str:
    """The rows of ``spans`` as ``(t, keys, sums)``: the hours from ``hourly``, whole
    days and stand-ins from ``daily``, less the hours stand-ins do not stand for."""
    parts = []
    if spans.hours:
        parts.append(_hour_rows(args, hourly, list(spans.hours), None, 1))
    if spans.days:
        parts.append(_whole_days(args, daily, list(spans.days)))
    if spans.stand_ins:
        parts.append(_day_rows(args, daily, [d for d, _ in spans.stand_ins],
                               [at for _, at in spans.stand_ins]))
    if spans.minus:
        parts.append(_hour_rows(args, hourly, [(a, b) for a, b, _ in spans.minus],
                                [at for _, _, at in spans.minus], -1))
    if not parts:
        parts.append(f"SELECT {daily.select('NULL::timestamptz', 1)} FROM {daily.table} r "
                     "WHERE false")
    return "\nUNION ALL\n".join(parts)


def _totals_of(args: _Args, scope: Scope) -> tuple[_Grain, _Grain]:
    """A link's or a domain's (clicks, human_clicks) per hour and per day."""
    sums = ("r.clicks AS clicks", "r.human_clicks AS human_clicks")
    if scope.link_id is not None:  # read hour by hour (see _hours_only)
        facts = _Grain("stats_facts", "hour", (), (
            "r.clicks AS clicks", "CASE WHEN r.bot THEN 0 ELSE r.clicks END AS human_clicks"),
            f"r.link_id = {args(scope.link_id)}")
        return facts, facts
    domain = f"r.domain_id = {args(scope.domain_id)}"
    return (_Grain("stats_domain_hourly", "hour", (), sums, domain),
            _Grain("stats_domain_daily", "day", (), sums, domain))


def _dims_where(args: _Args, domain_id: int, dims: list[str], values: list[str] | None
                ) -> str:
    where = f"r.domain_id = {args(domain_id)} AND r.dim = ANY({args(dims)}::text[])"
    if values is not None:
        where += f" AND r.value = ANY({args(values)}::text[])"
    return where


def _hours_sum(hours: frozenset[int]) -> str:
    """The clicks of a daily dimension row in these UTC hours of its day (its hour
    columns, or its total less the other hours when that adds fewer)."""
    if len(hours) == len(HOUR_COLUMNS):
        return "r.clicks"
    if len(hours) > len(HOUR_COLUMNS) // 2:
        rest = " + ".join(f"r.{c}" for h, c in enumerate(HOUR_COLUMNS) if h not in hours)
        return f"r.clicks - ({rest})"
    return " + ".join(f"r.{HOUR_COLUMNS[h]}" for h in sorted(hours))


def _dim_rows(args: _Args, spans: Spans, where: str, cuts: list[datetime]) -> str:
    """(t, dim, value, clicks) rows of a domain's daily dimension rows over ``spans``:
    whole days as they are, and every other day's row read once, its hours added up per
    instant they are counted at (:func:`spans.day_hours`, within the bucket of ``cuts``
    each hour is in). Days cut alike (a zone's every local midnight, say) share one
    statement part, so the SQL grows with the ways days are cut, not with days."""
    keys = ("r.dim AS dim", "r.value AS value")
    parts = []
    if spans.days:
        daily = _Grain("stats_domain_dims_daily", "day", keys, ("r.clicks AS clicks",), where)
        parts.append(_whole_days(args, daily, list(spans.days)))
    shapes: dict[tuple[tuple[int, frozenset[int]], ...], list[date]] = {}
    for day, counted in day_hours(spans, cuts).items():
        shape = tuple(sorted(((at - midnight(day)) // timedelta(seconds=1), hours)
                             for at, hours in counted.items()))
        shapes.setdefault(shape, []).append(day)
    midnight_sql = "(r.day::timestamp AT TIME ZONE 'UTC')"
    for shape, days in shapes.items():
        on_days = f"r.day = ANY({args(days)}::date[]) AND {where}"
        if len(shape) == 1:  # one instant: no unpivot
            (offset, hours), = shape
            parts.append(f"""SELECT {midnight_sql} + {offset} * interval '1 second' AS t,
                                    {", ".join(keys)}, {_hours_sum(hours)} AS clicks
                             FROM stats_domain_dims_daily r WHERE {on_days}""")
        else:
            terms = ", ".join(f"({offset}, {_hours_sum(hours)})" for offset, hours in shape)
            parts.append(f"""SELECT {midnight_sql} + x.o * interval '1 second' AS t,
                                    {", ".join(keys)}, x.clicks
                             FROM stats_domain_dims_daily r
                             CROSS JOIN LATERAL (VALUES {terms}) AS x(o, clicks)
                             WHERE {on_days}""")
    if not parts:
        return ("SELECT NULL::timestamptz AS t, NULL::text AS dim, NULL::text AS value, "
                "0::bigint AS clicks WHERE false")
    return "\nUNION ALL\n".join(parts)


def _hours_only(spans: Spans) -> Spans:
    """``spans`` read from the hourly rows only: a link's own answers and charts read its
    facts (a range of their primary key), as its breakdowns do."""
    return Spans(spans.lo, spans.hi, ((spans.lo, spans.hi),) if spans.lo < spans.hi else ())


def _bucket(args: _Args, bounds: list[datetime], at: str = "x.t") -> str:
    """The chart bucket of ``at``: 1 for the first (``bounds`` from
    ``periods.chart_bounds``); 0 for rows before the first bucket (a previous period)."""
    placeholder = args(bounds[:-1] or [datetime(1970, 1, 1, tzinfo=UTC)])
    return f"width_bucket({at}, {placeholder}::timestamptz[])"


async def clicks_by_bucket(conn: Any, scope: Scope, current: Spans, previous: Spans | None,
                           bounds: list[datetime]) -> dict[int, tuple[int, int]]:
    """{bucket: (clicks, human clicks)} of ``current`` in the chart buckets (1-based, see
    :func:`_bucket`), and of ``previous`` (the period before) as bucket 0, unfiltered
    (filtered: :func:`filtered_period`, :func:`filtered_previous`)."""
    args = _Args()
    hourly, daily = _totals_of(args, scope)
    if scope.link_id is not None:
        current = _hours_only(current)
        previous = _hours_only(previous) if previous is not None else None
    source = _rows_in(args, current, hourly, daily)
    if previous is not None:
        source += "\nUNION ALL\n" + _rows_in(args, previous, hourly, daily)
    sql = f"""SELECT CASE WHEN x.t < {args(current.lo)} THEN 0 ELSE {_bucket(args, bounds)} END
                       AS bucket,
                     sum(x.clicks)::bigint AS clicks, sum(x.human_clicks)::bigint AS human
              FROM ({source}) x GROUP BY 1"""
    return {r["bucket"]: (r["clicks"], r["human"]) for r in await conn.fetch(sql, *args.values)}


# One grouping set per dimension: a fact row is hashed once into each set's table,
# whereas unpivoting it into a (dim, value) row per dimension and grouping those hashed
# eleven rows per fact (measured on a month of a 1,000,000-click domain filtered to one
# country, 47,000 facts: 70 ms against 150). The set's dimension is the one GROUPING()
# says is grouped; its value the one non-NULL column of the row (the others are not
# grouped).
#
# The sets of a filtered answer's aggregate take some 4 MB on that month (one table per
# set, each sized by the planner's guess of its groups): below this, the planner sorts
# the facts for some of the sets instead, which costs some 30 ms more.
FACTS_WORK_MEM = "16MB"


def _dimension_sets(alias: str, dims: list[str]) -> tuple[str, str, list[str]]:
    """For an aggregate of ``alias``'s facts with one grouping set per dimension of
    ``dims`` (see FACTS_WORK_MEM): the expressions of a row's dimension and value, and
    the sets."""
    if not dims:
        return "NULL::text", "NULL::text", []
    columns = [f"{alias}.{DIMENSION_COLUMNS[dim]}" for dim in dims]
    dim_of_set = "CASE {} END".format(" ".join(
        f"WHEN GROUPING({col}) = 0 THEN '{dim}'" for dim, col in zip(dims, columns,
                                                                       strict=True)))
    return dim_of_set, f"coalesce({', '.join(columns)})", [f"({col})" for col in columns]


@dataclass(frozen=True)
class FactsAnswer:
    """A filtered period's sums: {chart bucket: (clicks, human clicks)} (1-based, see
    :func:`_bucket`; the chart's bounds hold exactly the period's hours), the top values
    of each dimension asked for, and how many distinct links were clicked."""

    buckets: dict[int, tuple[int, int]]
    tops: dict[str, list[tuple[str, int]]]
    links: int


async def filtered_period(conn: Any, scope: Scope, spans: Spans, bounds: list[datetime],
                          dims: list[str], limit: int, filters: Filters) -> FactsAnswer:
    """Totals per chart bucket, breakdowns and clicked links of a filtered period in one
    statement: its facts are read once and summed per bucket, per link (counted
    afterwards) and per value of each dimension, in one aggregate with grouping sets.
    (Read by separate statements, a domain's month of facts was read three times.)"""
    args = _Args()
    columns = [DIMENSION_COLUMNS[dim] for dim in dims]
    dim_of_set, value, dim_sets = _dimension_sets("x", dims)
    sets = ", ".join(["(x.bucket)", "(x.link_id)", *dim_sets])
    where = _facts_where(args, scope, spans.lo, spans.hi, filters)
    sql = f"""
        WITH g AS (
            SELECT GROUPING(x.bucket) AS no_bucket, GROUPING(x.link_id) AS no_link,
                   x.bucket, {dim_of_set} AS dim, {value} AS value,
                   sum(x.clicks)::bigint AS clicks, sum(x.human_clicks)::bigint AS human
            FROM (SELECT {_bucket(args, bounds, 'f.hour')} AS bucket,
                         f.link_id, {", ".join(f"f.{col}" for col in columns) or "NULL"},
                         f.clicks, CASE WHEN f.bot THEN 0 ELSE f.clicks END AS human_clicks
                  FROM stats_facts f WHERE {where}) x
            GROUP BY GROUPING SETS ({sets}))
        SELECT 'bucket' AS kind, bucket AS n, NULL AS value, clicks, human
        FROM g WHERE no_bucket = 0
        UNION ALL
        SELECT 'links', count(*), NULL, 0, 0 FROM g WHERE no_link = 0
        UNION ALL
        SELECT dim, rank, value, clicks, 0 FROM (
            SELECT dim, value, clicks,
                   row_number() OVER (PARTITION BY dim ORDER BY clicks DESC, value) AS rank
            FROM g WHERE dim IS NOT NULL AND value IS NOT NULL AND clicks > 0) ranked
        WHERE rank <= {args(limit)}"""
    if scope.link_id is not None:  # a link's facts: a few rows, no memory to add
        rows = await conn.fetch(sql, *args.values)
    else:
        async with conn.transaction():
            # SET LOCAL: the rest of the pool's statements keep the server's default.
            await conn.execute(f"SET LOCAL work_mem = '{FACTS_WORK_MEM}'")
            rows = await conn.fetch(sql, *args.values)
    buckets: dict[int, tuple[int, int]] = {}
    ranked: dict[str, list[tuple[int, str, int]]] = {dim: [] for dim in dims}
    links = 0
    for row in rows:
        if row["kind"] == "bucket":
            buckets[row["n"]] = (row["clicks"], row["human"])
        elif row["kind"] == "links":
            links = row["n"]
        else:
            ranked[row["kind"]].append((row["n"], row["value"], row["clicks"]))
    tops = {dim: [(value, clicks) for _, value, clicks in sorted(values)]
            for dim, values in ranked.items()}
    return FactsAnswer(buckets, tops, links)


async def filtered_previous(conn: Any, scope: Scope, lo: datetime, hi: datetime,
                            filters: Filters) -> tuple[int, int, int]:
    """(clicks, human clicks, distinct links clicked) of a filtered previous period."""
    args = _Args()
    row = await conn.fetchrow(
        f"""SELECT coalesce(sum(f.clicks), 0)::bigint AS clicks,
                   coalesce(sum(f.clicks) FILTER (WHERE NOT f.bot), 0)::bigint AS human,
                   count(DISTINCT f.link_id) AS links
            FROM stats_facts f WHERE {_facts_where(args, scope, lo, hi, filters)}""",
        *args.values)
    return row["clicks"], row["human"], row["links"]


async def built_days(conn: Any, domain_id: int, first: date, end: date, hi: datetime
                     ) -> list[tuple[date, datetime]]:
    """(day, through) of the days in ``[first, end)`` whose filter rollups (migration
    0206) cover hours that end by ``hi`` and miss no click those hours hold now."""
    rows = await conn.fetch(
        f"""SELECT b.day, b.through FROM stats_filter_days b
            LEFT JOIN stats_domain_daily d ON d.domain_id = b.domain_id AND d.day = b.day
            WHERE b.domain_id = $1 AND b.day >= $2 AND b.day < $3 AND b.through <= $4
              AND b.clicks = {MARKED_CLICKS_NOW}""",
        domain_id, first, end, hi)
    return [(r["day"], r["through"]) for r in rows]


@dataclass(frozen=True)
class ValueSums:
    """The clicks with one of some values of one dimension: all of them, the human ones,
    per value of each dimension asked for (every value, unranked), and how many distinct
    links they went to."""

    clicks: int
    human: int
    values: dict[str, dict[str, int]]
    links: int


async def value_sums(conn: Any, domain_id: int, dim: str, values: list[str], days: list[date],
                     hours: list[tuple[datetime, datetime]], dims: list[str]) -> ValueSums:
    """The clicks of a domain with ``dim`` in ``values`` on the built ``days`` (from their
    filter rollups) and in ``hours`` (from the facts, read once), summed per value of
    ``dims``, with the links they went to (bitmaps of the days, ids of the hours)."""
    args = _Args()
    domain, dim_arg, values_arg = args(domain_id), args(dim), args(values)
    days_arg, wanted = args(days), args(sorted({dim, *dims}))
    lo, hi = args([a for a, _ in hours]), args([b for _, b in hours])
    column = DIMENSION_COLUMNS[dim]  # a fixed table's, never a caller's
    dim_of_set, value, sets = _dimension_sets("f", sorted({dim, *dims}))
    sql = f"""
        WITH f AS MATERIALIZED (
            SELECT f.* FROM unnest({lo}::timestamptz[], {hi}::timestamptz[]) AS s(lo, hi)
            CROSS JOIN LATERAL (SELECT * FROM stats_facts f
                                WHERE f.domain_id = {domain} AND f.hour >= s.lo
                                  AND f.hour < s.hi AND f.{column} = ANY({values_arg}::text[])
                                OFFSET 0) f),
        sums AS (
            SELECT x.dim, x.value, sum(x.clicks)::bigint AS clicks,
                   sum(x.human_clicks)::bigint AS human
            FROM (
                -- A value's ('', '') row holds all its clicks: its own dimension's row.
                SELECT CASE WHEN p.by_dim = '' THEN p.dim ELSE p.by_dim END AS dim,
                       CASE WHEN p.by_dim = '' THEN p.value ELSE p.by_value END AS value,
                       p.clicks, p.human_clicks
                FROM stats_domain_pairs_daily p
                WHERE p.domain_id = {domain} AND p.dim = {dim_arg}
                  AND p.value = ANY({values_arg}::text[]) AND p.day = ANY({days_arg}::date[])
                  AND (p.by_dim = '' OR p.by_dim = ANY({wanted}::text[]))
                UNION ALL
                SELECT {dim_of_set}, {value}, sum(f.clicks)::bigint,
                       sum(CASE WHEN f.bot THEN 0 ELSE f.clicks END)::bigint
                FROM f GROUP BY GROUPING SETS ({", ".join(sets)})) x
            WHERE x.value IS NOT NULL
            GROUP BY 1, 2)
        SELECT dim, value, clicks, human, NULL::bigint AS first_link, NULL::bytea AS links,
               NULL::bigint[] AS ids
        FROM sums
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, l.first_link, l.links, NULL
        FROM stats_domain_value_links l
        WHERE l.domain_id = {domain} AND l.dim = {dim_arg}
          AND l.value = ANY({values_arg}::text[]) AND l.day = ANY({days_arg}::date[])
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, NULL, NULL, array_agg(DISTINCT f.link_id) FROM f"""
    per_value: dict[str, dict[str, int]] = {d: {} for d in dims}
    clicks = human = 0
    bitmaps: list[tuple[int, bytes]] = []
    ids: list[int] = []
    for row in await conn.fetch(sql, *args.values):
        if row["links"] is not None:
            bitmaps.append((row["first_link"], row["links"]))
        elif row["dim"] is None:
            ids = row["ids"] or []
        else:
            if row["dim"] == dim:
                clicks += row["clicks"]
                human += row["human"]
            if row["dim"] in per_value:
                per_value[row["dim"]][row["value"]] = row["clicks"]
    return ValueSums(clicks, human, per_value, link_sets.count_union(bitmaps, ids))


def _ranked(source: str, args: _Args, limit: int) -> str:
    return f"""
        SELECT dim, value, clicks FROM (
            SELECT dim, value, sum(clicks)::bigint AS clicks,
                   row_number() OVER (PARTITION BY dim ORDER BY sum(clicks) DESC, value)
                     AS rank
            FROM ({source}) x GROUP BY dim, value
            HAVING sum(clicks) > 0) ranked
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
        source = _dim_rows(args, spans, _dims_where(args, scope.domain_id, dims, None), [])
    else:
        where = _facts_where(args, scope, spans.lo, spans.hi, filters)
        source = f"""SELECT d.dim, d.value, f.clicks
                     FROM stats_facts f
                     CROSS JOIN LATERAL (VALUES {FACT_DIMENSIONS}) AS d(dim, value)
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
        source = _dim_rows(args, spans, _dims_where(args, scope.domain_id, [dim], values),
                           bounds)
    else:
        column = DIMENSION_COLUMNS[dim]
        where = _facts_where(args, scope, spans.lo, spans.hi, filters)
        source = f"""SELECT f.hour AS t, f.{column} AS value, f.clicks
                     FROM stats_facts f
                     WHERE {where} AND f.{column} = ANY({args(values)}::text[])"""
    sql = f"""SELECT x.value, {_bucket(args, bounds)} AS bucket, sum(x.clicks)::bigint AS clicks
              FROM ({source}) x GROUP BY 1, 2"""
    return [(r["value"], r["bucket"], r["clicks"]) for r in await conn.fetch(sql, *args.values)]


def _next_month(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


def _month_pieces(ranges: list[tuple[date, date]]) -> list[tuple[date, int, int]]:
    """Day ranges as (month, first day, last day) pieces within one month each."""
    pieces = []
    for a, b in ranges:
        while a < b:
            month = a.replace(day=1)
            following = _next_month(month)
            end = min(b, following)
            pieces.append((month, a.day, (end - timedelta(days=1)).day))
            a = end
    return pieces


def _days_of(columns: tuple[str, ...], first: int, last: int) -> str:
    """SQL: days ``first``..``last`` of a month from its cumulative day ``columns``."""
    upto = f"r.{columns[last - 1]}"
    return upto if first == 1 else f"{upto} - r.{columns[first - 2]}"


def _month_piece(args: _Args, where: str, piece: tuple[date, int, int]) -> str:
    month, first, last = piece
    return f"""SELECT r.link_id, {_days_of(DAY_COLUMNS, first, last)} AS clicks
               FROM stats_link_monthly r WHERE {where} AND r.month = {args(month)}::date"""


def _carries(pieces: list[tuple[date, int, int]]) -> bool:
    """The pieces lie in two adjacent months: the later month's rows may carry both."""
    return len(pieces) == 2 and _next_month(pieces[0][0]) == pieces[1][0]


def _carried_months(args: _Args, domain: str, where: str,
                    pieces: list[tuple[date, int, int]]) -> str:
    """The two adjacent months' pieces, read from the later month's rows (one per link:
    its own day columns and the earlier month's copy, migration 0207) while the copy
    holds every click of the earlier month; otherwise from both months' rows, joined on
    the link. Both branches are in the statement, and its snapshot decides which runs
    (the planner turns the test into a one-time filter: the other branch is never
    executed), so the copy is checked against the very rows it is read with."""
    (_, first, last), (later, later_first, later_last) = pieces
    month = args(later)
    current = f"""EXISTS (SELECT FROM stats_month_carry m
                          WHERE m.domain_id = {domain} AND m.month = {month}::date
                            AND m.clicks = {previous_month_clicks(domain, f"{month}::date")})"""
    carried = (f"{_days_of(DAY_COLUMNS, later_first, later_last)} + "
               f"{_days_of(CARRY_COLUMNS, first, last)}")
    both = (f"({_month_piece(args, where, pieces[0])}) a FULL JOIN "
            f"({_month_piece(args, where, pieces[1])}) b USING (link_id)")
    return f"""SELECT r.link_id, {carried} AS clicks FROM stats_link_monthly r
               WHERE {where} AND r.month = {month}::date AND {current}
               UNION ALL
               SELECT link_id, coalesce(a.clicks, 0) + coalesce(b.clicks, 0) AS clicks
               FROM {both} WHERE NOT {current}"""


def _link_clicks(args: _Args, domain_id: int, spans: Spans, link_ids: list[int] | None,
                 id_range: tuple[int, int] | None = None) -> str:
    """One (link_id, clicks) row per link of the domain (or of ``link_ids``, or of the ids
    in ``id_range``, both ends included) with rows in ``spans``: the daily rows read are
    differences of two cumulative columns of stats_link_monthly (one row per link and
    month however many days; for two adjacent months, one row while it carries the
    earlier one: :func:`_carried_months`), the hours come from stats_facts. Each month
    piece, and the hours summed per link, give at most one row per link, so they are put
    together by full joins on the link: hashing one piece's rows to look the next one's up in costs
    less than hashing every row into groups (measured some 5-10 % less on two pieces of a
    10,000-link domain), and the caller has nothing left to sum."""
    domain = args(domain_id)
    where = f"r.domain_id = {domain}"
    if link_ids is not None:
        where += f" AND r.link_id = ANY({args(link_ids)}::bigint[])"
    if id_range is not None:
        where += f" AND r.link_id BETWEEN {args(id_range[0])} AND {args(id_range[1])}"
    if spans.whole:
        return f"SELECT r.link_id, r.clicks FROM stats_link_totals r WHERE {where}"
    pieces = _month_pieces(spans.day_set)
    parts = [_carried_months(args, domain, where, pieces)] if _carries(pieces) else [
        _month_piece(args, where, piece) for piece in pieces]
    hourly = _Grain("stats_facts", "hour", ("r.link_id AS link_id",), ("r.clicks AS clicks",),
                    where)
    hours = []
    if spans.hours:
        hours.append(_hour_rows(args, hourly, list(spans.hours), None, 1))
    if spans.minus:
        hours.append(_hour_rows(args, hourly, [(a, b) for a, b, _ in spans.minus],
                                [at for _, _, at in spans.minus], -1))
    if hours:
        rows = "\nUNION ALL\n".join(f"SELECT link_id, clicks FROM ({part}) p" for part in hours)
        parts.append(f"SELECT link_id, sum(clicks)::bigint AS clicks FROM ({rows}) h "
                     "GROUP BY link_id")
    if not parts:
        return "SELECT NULL::bigint AS link_id, 0::bigint AS clicks WHERE false"
    if len(parts) == 1:
        return parts[0]
    joined = "\nFULL JOIN ".join(f"({part}) p{i}" + (" USING (link_id)" if i else "")
                                 for i, part in enumerate(parts))
    total = " + ".join(f"coalesce(p{i}.clicks, 0)" for i in range(len(parts)))
    return f"SELECT link_id, {total} AS clicks FROM {joined}"


def _ranking(args: _Args, domain_id: int, spans: Spans, limit: int, filters: Filters,
             id_range: tuple[int, int] | None) -> str:
    """SQL: (link_id, path, clicks) of the ``limit`` most clicked links, most first."""
    if filters.empty:  # one row per link
        inner = _link_clicks(args, domain_id, spans, None, id_range)
    else:
        where = _facts_where(args, Scope(domain_id), spans.lo, spans.hi, filters)
        if id_range is not None:
            where += f" AND f.link_id BETWEEN {args(id_range[0])} AND {args(id_range[1])}"
        inner = f"""SELECT f.link_id, sum(f.clicks)::bigint AS clicks FROM stats_facts f
                    WHERE {where} GROUP BY f.link_id"""
    return f"""SELECT t.link_id, coalesce(l.path, '') AS path, t.clicks
               FROM (SELECT * FROM ({inner}) t WHERE t.clicks > 0
                     ORDER BY t.clicks DESC, t.link_id LIMIT {args(limit)}) t
               LEFT JOIN links l ON l.id = t.link_id
               ORDER BY t.clicks DESC, t.link_id"""


async def top_links(conn: Any, domain_id: int, spans: Spans, limit: int, filters: Filters,
                    id_range: tuple[int, int] | None = None) -> list[tuple[int, str, int]]:
    """(link id, path, clicks) of the most clicked links of a domain (of those whose id is
    in ``id_range``, both ends included, when given)."""
    args = _Args()
    rows = await conn.fetch(_ranking(args, domain_id, spans, limit, filters, id_range),
                            *args.values)
    return [(r["link_id"], r["path"], r["clicks"]) for r in rows]


def _series(args: _Args, domain_id: int, link_ids: str, spans: Spans, bounds: list[datetime],
            filters: Filters) -> str:
    """SQL: (link_id, bucket, clicks) of the links of the array ``link_ids`` (SQL) in the
    chart buckets (:func:`_bucket`); ``spans``: the period's hours cut at the bounds."""
    if filters.empty:
        facts = _Grain("stats_facts", "hour", ("r.link_id AS link_id",),
                       ("r.clicks AS clicks",),
                       f"r.domain_id = {args(domain_id)} AND r.link_id = ANY({link_ids})")
        source = _rows_in(args, _hours_only(spans), facts, facts)
    else:
        where = _facts_where(args, Scope(domain_id), spans.lo, spans.hi, filters)
        source = f"""SELECT f.hour AS t, f.link_id, f.clicks FROM stats_facts f
                     WHERE {where} AND f.link_id = ANY({link_ids})"""
    return f"""SELECT x.link_id, {_bucket(args, bounds)} AS bucket,
                      sum(x.clicks)::bigint AS clicks
               FROM ({source}) x GROUP BY 1, 2"""


async def top_links_charted(conn: Any, domain_id: int, spans: Spans, limit: int,
                            filters: Filters, id_range: tuple[int, int] | None,
                            cut: Spans, bounds: list[datetime]
                            ) -> list[tuple[int, str, int, dict[int, int]]]:
    """:func:`top_links` with each link's clicks per chart bucket ({bucket: clicks}, see
    :func:`_bucket`), in the same statement: the chart waits for no second round trip.
    ``cut``: the period's hours cut at the bucket ``bounds``."""
    args = _Args()
    ranked = _ranking(args, domain_id, spans, limit, filters, id_range)
    # ARRAY(...) is computed once (an init plan), so the series reads the facts by their
    # key (link, hour) as for a list of ids given.
    series = _series(args, domain_id, "ARRAY(SELECT link_id FROM ranked)", cut, bounds,
                     filters)
    rows = await conn.fetch(
        f"""WITH ranked AS MATERIALIZED ({ranked})
            SELECT r.link_id, r.path, r.clicks, s.buckets, s.sums
            FROM ranked r
            LEFT JOIN (SELECT link_id, array_agg(bucket) AS buckets, array_agg(clicks) AS sums
                       FROM ({series}) x GROUP BY link_id) s USING (link_id)
            ORDER BY r.clicks DESC, r.link_id""",
        *args.values)
    return [(r["link_id"], r["path"], r["clicks"],
             dict(zip(r["buckets"] or [], r["sums"] or [], strict=True))) for r in rows]


def _clicked_on(args: _Args, spans: Spans) -> str:
    """``t.days`` (the days a link was clicked on) meets a whole day of ``spans``: one
    range test per span (a multirange against a range costs half of one against a
    multirange)."""
    return " OR ".join(f"t.days && daterange({args(a)}::date, {args(b)}::date)"
                       for a, b in spans.days)


async def clicked_links(conn: Any, domain_id: int, periods: list[Spans]) -> list[int]:
    """How many distinct links of the domain were clicked in each of ``periods``. A
    period with whole days counts in one pass over the domain's links (one row each): a
    link counts when one of the days it was clicked on is a whole day of the period, or
    when it has clicks in the hours of the period's cut days. A period of cut days only
    (today, say) counts the distinct links of its hours' facts directly: hashing those
    once costs less than looking every link of the domain up in them. Unfiltered
    (filtered: :func:`filtered_period`, :func:`filtered_previous`)."""
    args = _Args()
    domain = args(domain_id)

    def hours_links(spans: Spans) -> str:
        lo, hi = args([a for a, _ in spans.hours]), args([b for _, b in spans.hours])
        return f"""SELECT r.link_id
                   FROM unnest({lo}::timestamptz[], {hi}::timestamptz[]) AS s(lo, hi)
                   CROSS JOIN LATERAL (SELECT r.link_id FROM stats_facts r
                       WHERE r.domain_id = {domain} AND r.hour >= s.lo
                         AND r.hour < s.hi OFFSET 0) r"""

    def count(spans: Spans) -> str:
        if spans.whole:
            return "count(*)"
        # A distinct count cannot subtract: every cut day as its own hours.
        spans = split(spans.lo, spans.hi)
        if not spans.days:
            if not spans.hours:
                return "0"
            return (f"(SELECT count(*) FROM (SELECT DISTINCT link_id "
                    f"FROM ({hours_links(spans)}) h) d)")
        conditions = [_clicked_on(args, spans)]
        if spans.hours:
            conditions.append(f"t.link_id IN ({hours_links(spans)})")
        return f"count(*) FILTER (WHERE {' OR '.join(conditions)})"

    counts = [count(spans) for spans in periods]
    source = f" FROM stats_link_totals t WHERE t.domain_id = {domain}"
    if all(c.startswith("(") or c == "0" for c in counts):
        # No pass over the links (the domain is still a parameter of the statement).
        source = f" WHERE {domain}::bigint IS NOT NULL"
    row = await conn.fetchrow(f"SELECT {', '.join(counts)}{source}", *args.values)
    return list(row)


async def clicks_of_links(conn: Any, domain_id: int, link_ids: list[int], spans: Spans
                          ) -> dict[int, int]:
    args = _Args()
    rows = await conn.fetch(
        f"SELECT link_id, clicks FROM ({_link_clicks(args, domain_id, spans, link_ids)}) x",
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
    await lock_carries(conn, domain_id)
    await conn.execute(
        """DELETE FROM stats_link_visitors WHERE link_id IN
               (SELECT link_id FROM stats_link_totals WHERE domain_id = $1)""",
        domain_id)
    for table in ("stats_link_monthly", "stats_link_totals",
                  "stats_domain_hourly", "stats_domain_daily", "stats_domain_dims_daily",
                  "stats_domain_dims_totals", "stats_facts", "stats_clicks",
                  "stats_month_carry", *FILTER_ROLLUPS):
        await conn.execute(f"DELETE FROM {table} WHERE domain_id = $1", domain_id)


# One link's clicks per dimension value, UTC day and hour of the day (from its facts), to
# take out of its domain's dimension rollups.
_LINK_DIMS = f"""SELECT (f.hour AT TIME ZONE 'UTC')::date AS day,
                        extract(hour FROM f.hour AT TIME ZONE 'UTC')::int AS hr,
                        x.dim, x.value, f.clicks
                 FROM stats_facts f
                 CROSS JOIN LATERAL (VALUES {FACT_DIMENSIONS}) AS x(dim, value)
                 WHERE f.link_id = $1 AND x.value IS NOT NULL"""
_LINK_DIM_HOURS = ", ".join(f"coalesce(sum(clicks) FILTER (WHERE hr = {h}), 0) AS {c}"
                            for h, c in enumerate(HOUR_COLUMNS))
_TAKE_HOURS = ", ".join(f"{c} = d.{c} - l.{c}" for c in HOUR_COLUMNS)


async def clear_link(conn: Any, domain_id: int, link_id: int) -> None:
    """Deletes one link's statistics and takes them out of its domain's rollups (call
    inside a transaction). The filter rollups of the days it was clicked on are deleted
    (the stats service builds them again): a marker left in place could match its day's
    clicks again once late clicks had made up for the ones taken out. So are the month
    carries (migration 0207) of the months after those it was clicked in."""
    await lock_carries(conn, domain_id)
    await conn.execute(
        """DELETE FROM stats_month_carry WHERE domain_id = $2 AND month IN
               (SELECT (month + interval '1 month')::date FROM stats_link_monthly
                WHERE domain_id = $2 AND link_id = $1)""",
        link_id, domain_id)
    for table in FILTER_ROLLUPS:
        await conn.execute(
            f"""DELETE FROM {table} WHERE domain_id = $2 AND day IN
                    (SELECT DISTINCT (hour AT TIME ZONE 'UTC')::date FROM stats_facts
                     WHERE link_id = $1)""",
            link_id, domain_id)
    await conn.execute(
        """UPDATE stats_domain_hourly d
           SET clicks = d.clicks - l.clicks, human_clicks = d.human_clicks - l.human_clicks
           FROM stats_link_hourly l
           WHERE l.link_id = $1 AND d.domain_id = $2 AND d.hour = l.hour""",
        link_id, domain_id)
    await conn.execute(
        """UPDATE stats_domain_daily d
           SET clicks = d.clicks - l.clicks, human_clicks = d.human_clicks - l.human_clicks
           FROM (SELECT (hour AT TIME ZONE 'UTC')::date AS day, sum(clicks) AS clicks,
                        sum(human_clicks) AS human_clicks
                 FROM stats_link_hourly WHERE link_id = $1 GROUP BY 1) l
           WHERE d.domain_id = $2 AND d.day = l.day""",
        link_id, domain_id)
    await conn.execute(
        f"""UPDATE stats_domain_dims_daily d
            SET clicks = d.clicks - l.clicks, {_TAKE_HOURS}
            FROM (SELECT day, dim, value, sum(clicks) AS clicks, {_LINK_DIM_HOURS}
                  FROM ({_LINK_DIMS}) x GROUP BY day, dim, value) l
            WHERE d.domain_id = $2 AND d.dim = l.dim AND d.day = l.day AND d.value = l.value""",
        link_id, domain_id)
    await conn.execute(
        f"""UPDATE stats_domain_dims_totals d SET clicks = d.clicks - l.clicks
            FROM (SELECT dim, value, sum(clicks) AS clicks FROM ({_LINK_DIMS}) x
                  GROUP BY dim, value) l
            WHERE d.domain_id = $2 AND d.dim = l.dim AND d.value = l.value""",
        link_id, domain_id)
    for table in ("stats_domain_hourly", "stats_domain_daily", "stats_domain_dims_daily",
                  "stats_domain_dims_totals"):
        await conn.execute(f"DELETE FROM {table} WHERE domain_id = $1 AND clicks <= 0",
                           domain_id)
    await conn.execute("DELETE FROM stats_link_visitors WHERE link_id = $1", link_id)
    for table in ("stats_link_monthly", "stats_link_totals", "stats_facts", "stats_clicks"):
        await conn.execute(f"DELETE FROM {table} WHERE domain_id = $1 AND link_id = $2",
                           domain_id, link_id)
