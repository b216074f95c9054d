"""The statistics answers: authorisation of the domain or link, periods resolved in the
caller's zone, and the rollup reads shaped like Short.io's statistics API."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import asyncpg
import pycountry

from services.stats import queries
from services.stats.models import (
    FilteredStatsQuery,
    FilterSpec,
    LastClicksQuery,
    LinkClicksQuery,
    StatsQuery,
    TopQuery,
)
from services.stats.periods import (
    PeriodError,
    Window,
    change,
    chart_bounds,
    chart_buckets,
    default_interval,
    hour_range,
    parse_moment,
    period_window,
    resolve_tz,
    tz_name,
)
from services.stats.queries import Filters, Scope
from services.stats.repository import DIMENSION_COLUMNS
from services.stats.spans import (
    Spans,
    days_starting,
    holds_all,
    hours_outside,
    midnight,
    split,
)
from shared.apikeys import Principal
from shared.errors import BadRequest, NotFound

DIMENSIONS = list(DIMENSION_COLUMNS)
# FilterSpec field -> raw-click column.
_FILTER_COLUMNS = {
    "countries": "country", "regions": "region", "cities": "city", "browsers": "browser",
    "os": "os", "devices": "device", "referers": "referer_host", "socials": "social",
    "utmSources": "utm_source", "utmMediums": "utm_medium", "utmCampaigns": "utm_campaign",
}


@dataclass(frozen=True)
class Limits:
    top: int
    chart_points: int


async def authorize_domain(conn: Any, who: Principal, domain_id: str) -> queries.Domain:
    """The domain when this key may read it; 404 otherwise (as if it did not exist)."""
    try:
        parsed = int(domain_id)
    except ValueError:
        raise NotFound("Domain not found") from None
    domain = await queries.domain(conn, parsed) if 0 < parsed < 2**63 else None
    if domain is None or not who.may_use_domain(parsed, domain.team_id):
        raise NotFound("Domain not found")
    return domain


async def authorize_link(conn: Any, who: Principal, id_string: str) -> asyncpg.Record:
    link = await queries.link_by_id_string(conn, id_string)
    if link is None or not who.may_use_domain(link["domain_id"], link["team_id"]):
        raise NotFound("Link not found")
    return link


def _window(query: StatsQuery, first_data: datetime | None, now: datetime) -> Window:
    try:
        tz = resolve_tz(query.tz, query.tzOffset)
        return period_window(query.period, now, tz, start_date=query.startDate,
                             end_date=query.endDate, first_data=first_data)
    except PeriodError as exc:
        raise BadRequest(str(exc)) from None


async def filters_of(conn: Any, domain_id: int, query: StatsQuery) -> Filters:
    if not isinstance(query, FilteredStatsQuery):
        return Filters()
    include, exclude = query.include or FilterSpec(), query.exclude or FilterSpec()
    if exclude.human is not None:
        raise BadRequest("exclude.human: use include.human")

    def columns(spec: FilterSpec) -> dict[str, list[str]]:
        return {column: list(values) for name, column in _FILTER_COLUMNS.items()
                if (values := getattr(spec, name)) is not None}

    include_links = (await queries.links_by_paths(conn, domain_id, include.paths)
                     if include.paths is not None else None)
    exclude_links = (await queries.links_by_paths(conn, domain_id, exclude.paths)
                     if exclude.paths is not None else None)
    return Filters(include=columns(include), exclude=columns(exclude), human=include.human,
                   include_links=include_links, exclude_links=exclude_links)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _interval_info(window: Window, interval: str) -> dict[str, Any]:
    return {
        "startDate": _iso(window.start),
        "endDate": _iso(window.end),
        "prevStartDate": _iso(window.prev_start) if window.prev_start else None,
        "prevEndDate": _iso(window.prev_end) if window.prev_end else None,
        "tz": tz_name(window.tz),
        "clicksChartInterval": interval,
    }


def _points(series: list[tuple[datetime, int]]) -> list[dict[str, Any]]:
    return [{"x": _iso(x), "y": y} for x, y in series]


def _country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    return country.name if country is not None else code


def _breakdown(dim: str, values: list[tuple[str, int]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for value, score in values:
        row: dict[str, Any] = {dim: value, "score": score}
        if dim == "country":
            row["countryName"] = _country_name(value)
        elif dim == "city":
            row["name"] = value
        rows.append(row)
    return rows


@dataclass(frozen=True)
class _Reading:
    """A resolved period: its window, its hours, and how the rollups answer it."""

    window: Window
    spans: Spans  # the period's hours, for totals and rankings
    previous: Spans | None  # the period before, for the *Change fields
    data: tuple[datetime | None, datetime | None]  # the scope's first and last clicked hour


def _reading(query: StatsQuery, now: datetime, data: tuple[datetime | None, datetime | None]
             ) -> _Reading:
    """``data``: the scope's first and last clicked hour ("total" starts with the first)."""
    first, last = data
    window = _window(query, first, now)
    lo, hi = hour_range(window.start, window.end)
    previous = None
    if window.prev_start is not None:
        previous = split(hour_range(window.prev_start, window.start)[0], lo,
                         data=(first, last))
    spans = split(lo, hi, whole=holds_all(lo, hi, first, last), data=(first, last))
    return _Reading(window, spans, previous, (first, last))


def _chart(reading: _Reading, interval: str, limits: Limits
           ) -> tuple[list[datetime], list[datetime], Spans]:
    """The chart's buckets, their bounds, and the period's hours cut at the bounds."""
    window = reading.window
    try:
        buckets = chart_buckets(window, interval, limits.chart_points)
    except PeriodError as exc:
        raise BadRequest(str(exc)) from None
    bounds = chart_bounds(window, buckets, interval)
    return buckets, bounds, split(reading.spans.lo, reading.spans.hi, bounds, data=reading.data)


@dataclass(frozen=True)
class _Statistics:
    """What a statistics answer reads: its filters, period and chart buckets."""

    filters: Filters
    reading: _Reading
    interval: str
    buckets: list[datetime]
    bounds: list[datetime]
    cut: Spans  # the period's hours cut at the bucket bounds


@dataclass(frozen=True)
class _Sums:
    """{chart bucket: (clicks, human clicks)} (bucket 0: the previous period), the top
    values of each dimension, and the distinct links clicked in the period and the
    previous one (None when not read)."""

    buckets: dict[int, tuple[int, int]]
    tops: dict[str, list[tuple[str, int]]]
    links: list[int] | None = None
    human: int | None = None  # the period's human clicks, when not given per bucket


async def _statistics(conn: Any, scope: Scope, query: StatsQuery, limits: Limits,
                      now: datetime, data: tuple[datetime | None, datetime | None]
                      ) -> _Statistics:
    filters = await filters_of(conn, scope.domain_id, query)
    reading = _reading(query, now, data)
    interval = query.clicksChartInterval or default_interval(reading.window)
    buckets, bounds, cut = _chart(reading, interval, limits)
    return _Statistics(filters, reading, interval, buckets, bounds, cut)


async def _unfiltered(conn: Any, scope: Scope, stats: _Statistics, query: StatsQuery,
                      limits: Limits) -> _Sums:
    reading = stats.reading
    sums = await queries.clicks_by_bucket(conn, scope, stats.cut, reading.previous,
                                          stats.bounds)
    tops = {} if query.skipTops else await queries.breakdowns(
        conn, scope, reading.spans, DIMENSIONS, limits.top, stats.filters)
    return _Sums(sums, tops)


async def _filtered_period(conn: Any, scope: Scope, stats: _Statistics, query: StatsQuery,
                           limits: Limits) -> queries.FactsAnswer:
    return await queries.filtered_period(
        conn, scope, stats.cut, stats.bounds, [] if query.skipTops else DIMENSIONS,
        limits.top, stats.filters)


async def _filtered_previous(conn: Any, scope: Scope, stats: _Statistics
                             ) -> tuple[int, int, int] | None:
    previous = stats.reading.previous
    if previous is None:
        return None
    return await queries.filtered_previous(conn, scope, previous.lo, previous.hi,
                                           stats.filters)


def _filtered(period: queries.FactsAnswer, previous: tuple[int, int, int] | None) -> _Sums:
    if previous is None:
        return _Sums(period.buckets, period.tops, [period.links])
    clicks, human, links = previous
    return _Sums({**period.buckets, 0: (clicks, human)}, period.tops, [period.links, links])


def _answer(stats: _Statistics, sums: _Sums) -> dict[str, Any]:
    reading, buckets = stats.reading, stats.buckets
    per_bucket = [sums.buckets.get(i, (0, 0)) for i in range(1, len(buckets) + 1)]
    total, human = sum(c for c, _ in per_bucket), sum(h for _, h in per_bucket)
    if sums.human is not None:
        human = sums.human
    answer: dict[str, Any] = {"totalClicks": total, "humanClicks": human}
    if reading.previous is not None:
        prev_total, prev_human = sums.buckets.get(0, (0, 0))
        answer["totalClicksChange"] = change(total, prev_total)
        answer["humanClicksChange"] = change(human, prev_human)
    else:
        answer["totalClicksChange"] = answer["humanClicksChange"] = "N/A"
    series = [(bucket, clicks) for bucket, (clicks, _) in zip(buckets, per_bucket, strict=True)]
    answer["clickStatistics"] = {"datasets": [{"label": "clicks", "data": _points(series)}]}
    answer["interval"] = _interval_info(reading.window, stats.interval)
    for dim in DIMENSIONS:
        answer[dim] = _breakdown(dim, sums.tops.get(dim, []))
    return answer


async def link_statistics(pool: asyncpg.Pool, who: Principal, id_string: str,
                          query: StatsQuery, limits: Limits) -> dict[str, Any]:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        link = await authorize_link(conn, who, id_string)
        scope = Scope(link["domain_id"], link["id"])
        stats = await _statistics(conn, scope, query, limits, now,
                                  await queries.link_data_hours(conn, link["id"]))
        if stats.filters.empty:
            sums = await _unfiltered(conn, scope, stats, query, limits)
        else:
            sums = _filtered(await _filtered_period(conn, scope, stats, query, limits),
                             await _filtered_previous(conn, scope, stats))
        answer = _answer(stats, sums)
        answer["uniqueVisitors"] = await queries.unique_visitors(
            conn, link["id"], stats.reading.spans.lo, stats.reading.spans.hi)
    return answer


async def _unfiltered_domain(conn: Any, scope: Scope, stats: _Statistics,
                             query: StatsQuery, limits: Limits) -> _Sums:
    """:func:`_unfiltered`, with the distinct links clicked in the period and the one
    before."""
    sums = await _unfiltered(conn, scope, stats, query, limits)
    reading = stats.reading
    periods = [reading.spans] + ([reading.previous] if reading.previous else [])
    return _Sums(sums.buckets, sums.tops,
                 await queries.clicked_links(conn, scope.domain_id, periods))


async def _filtered_domain(pool: asyncpg.Pool, scope: Scope, stats: _Statistics,
                           query: StatsQuery, limits: Limits) -> _Sums:
    """The filtered period and the one before, each on a connection of its own, at once."""

    async def period() -> queries.FactsAnswer:
        async with pool.acquire() as conn:
            return await _filtered_period(conn, scope, stats, query, limits)

    async def previous() -> tuple[int, int, int] | None:
        if stats.reading.previous is None:
            return None
        async with pool.acquire() as conn:
            return await _filtered_previous(conn, scope, stats)

    return _filtered(*await asyncio.gather(period(), previous()))


_DIMENSION_OF = {column: dim for dim, column in DIMENSION_COLUMNS.items()}


def _one_dimension(filters: Filters) -> tuple[str, list[str]] | None:
    """(dimension, values) when ``filters`` include values of one dimension and nothing
    else: the filter the filter rollups answer (migration 0206)."""
    if (len(filters.include) != 1 or filters.exclude or filters.human is not None
            or filters.include_links is not None or filters.exclude_links is not None):
        return None
    (column, values), = filters.include.items()
    return _DIMENSION_OF[column], values


def _most_clicked(clicks: dict[str, int], limit: int) -> list[tuple[str, int]]:
    """The ``limit`` values with most clicks, ties by value (as :func:`queries._ranked`)."""
    ranked = sorted((item for item in clicks.items() if item[1] > 0),
                    key=lambda item: (-item[1], item[0]))
    return ranked[:limit]


async def _value_period(conn: Any, domain_id: int, dim: str, values: list[str], spans: Spans,
                        dims: list[str]) -> queries.ValueSums:
    """The sums of a period's clicks with ``dim`` in ``values``: the hours its built days
    cover from their filter rollups, every other hour from the facts."""
    first, end = days_starting(spans.lo, spans.hi)
    built = await queries.built_days(conn, domain_id, first, end, spans.hi)
    hours = hours_outside(spans.lo, spans.hi, [(midnight(d), to) for d, to in built])
    return await queries.value_sums(conn, domain_id, dim, values, [d for d, _ in built],
                                    hours, dims)


async def _value_filtered_domain(pool: asyncpg.Pool, scope: Scope, stats: _Statistics,
                                 query: StatsQuery, limits: Limits, dim: str,
                                 values: list[str]) -> _Sums:
    """A domain's answer filtered by values of one dimension: the chart from the daily
    dimension rows (the consumer keeps them current), the rest by :func:`_value_period`.
    The period and the one before on a connection each, at once, each read in one
    snapshot (its chart and its totals from the same clicks)."""
    dims = [] if query.skipTops else DIMENSIONS
    previous_spans = stats.reading.previous

    async def period() -> tuple[list[tuple[str, int, int]], queries.ValueSums]:
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                            readonly=True):
            series = await queries.value_series(conn, scope, dim, values, stats.cut,
                                                stats.bounds, Filters())
            return series, await _value_period(conn, scope.domain_id, dim, values,
                                               stats.reading.spans, dims)

    async def previous() -> queries.ValueSums | None:
        if previous_spans is None:
            return None
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                            readonly=True):
            return await _value_period(conn, scope.domain_id, dim, values, previous_spans, [])

    (series, sums), before = await asyncio.gather(period(), previous())
    buckets: dict[int, tuple[int, int]] = {}
    for _, bucket, clicks in series:
        buckets[bucket] = (buckets.get(bucket, (0, 0))[0] + clicks, 0)
    tops = {d: _most_clicked(sums.values[d], limits.top) for d in dims}
    if before is None:
        return _Sums(buckets, tops, [sums.links], human=sums.human)
    buckets[0] = (before.clicks, before.human)
    return _Sums(buckets, tops, [sums.links, before.links], human=sums.human)


async def domain_statistics(pool: asyncpg.Pool, who: Principal, domain_id: str,
                            query: StatsQuery, limits: Limits) -> dict[str, Any]:
    """A domain's answer. Filtered by values of one dimension, it reads the filter
    rollups (:func:`_value_filtered_domain`); filtered otherwise, it sums the facts of the
    period and of the previous one on two connections at once (the period's take some
    120 ms on a month of a 1,000,000-click domain, the previous one's 45). Either takes
    its connections from the pool after the first is given back, so that no request
    holds one while it waits for another (see RANKING_PARTS)."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        domain = await authorize_domain(conn, who, domain_id)
        scope = Scope(domain.id)
        stats = await _statistics(conn, scope, query, limits, now, domain.data)
        sums = (await _unfiltered_domain(conn, scope, stats, query, limits)
                if stats.filters.empty else None)
    if sums is None:  # filtered: once the connection above is given back
        one_dimension = _one_dimension(stats.filters)
        sums = await (_filtered_domain(pool, scope, stats, query, limits)
                      if one_dimension is None else
                      _value_filtered_domain(pool, scope, stats, query, limits, *one_dimension))
    assert sums.links is not None
    answer = _answer(stats, sums)
    links, *previous_links = sums.links
    answer["links"] = links
    answer["linksChange"] = change(links, previous_links[0]) if previous_links else "N/A"
    answer["clicksPerLink"] = round(answer["totalClicks"] / links, 2) if links else 0
    return answer


async def link_clicks(pool: asyncpg.Pool, who: Principal, domain_id: str,
                      query: LinkClicksQuery) -> dict[str, int]:
    ids = query.ids if isinstance(query.ids, list) else query.ids.split(",")
    ids = [i.strip() for i in ids if i.strip()]
    if not ids or len(ids) > 1000:
        raise BadRequest("ids: give 1 to 1000 link ids")
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        domain = await authorize_domain(conn, who, domain_id)
        reading = _reading(query, now, domain.data)
        known = await queries.links_by_id_strings(conn, domain.id, ids)
        clicks = await queries.clicks_of_links(conn, domain.id, list(known.values()),
                                               reading.spans)
    return {id_string: clicks.get(link_id, 0) for id_string, link_id in known.items()}


def _check_column(column: str) -> None:
    if column != "path" and column not in DIMENSION_COLUMNS:
        raise BadRequest(f"column: one of path, {', '.join(DIMENSIONS)}")


# The most clicked links of a domain are ranked in this many parts of its link ids at
# once, each on a connection of its own: ranking sums a row or two of every link of the
# domain (10,000 links: some 10 ms of one core), the parts run on as many cores, and the
# most clicked of all are among the most clicked of each part. The parts are taken from
# the pool one by one and no request holds one while it waits for another, so a busy pool
# makes them wait their turn, never each other. A filtered ranking is one part: it reads
# the facts of the period along the domain's hours, and each part would read all of them.
RANKING_PARTS = 2


def id_parts(ids: tuple[int, int], parts: int) -> list[tuple[int, int]]:
    """``ids`` (lowest and highest, both included) as up to ``parts`` adjacent ranges."""
    lo, hi = ids
    size = -(-(hi - lo + 1) // parts)  # ceiling: no part is left over
    return [(a, min(a + size - 1, hi)) for a in range(lo, hi + 1, size)]


# A ranked link: (link id, path, clicks, {chart bucket: clicks} when charted).
_Ranked = tuple[int, str, int, dict[int, int]]


async def _top_links(pool: asyncpg.Pool, domain: int, spans: Spans, limit: int,
                     filters: Filters, ids: tuple[int, int] | None,
                     chart: tuple[list[datetime], list[datetime], Spans] | None = None
                     ) -> list[_Ranked]:
    """The most clicked links; with ``chart`` (:func:`_chart`), each with its clicks per
    bucket, read by each part for its own most clicked (a few more links' series, at
    once, instead of a round trip after)."""
    if ids is None:  # no clicked link
        return []

    async def part(id_range: tuple[int, int]) -> list[_Ranked]:
        async with pool.acquire() as conn:
            if chart is not None:
                _, bounds, cut = chart
                return await queries.top_links_charted(conn, domain, spans, limit, filters,
                                                       id_range, cut, bounds)
            return [(*row, {}) for row in await queries.top_links(
                conn, domain, spans, limit, filters, id_range)]

    count = RANKING_PARTS if filters.empty else 1
    parts = await asyncio.gather(*(part(r) for r in id_parts(ids, count)))
    return sorted(chain.from_iterable(parts), key=lambda row: (-row[2], row[0]))[:limit]


@dataclass(frozen=True)
class _Top:
    """A ranking's domain, filters and period; its (value, clicks, {chart bucket: clicks}
    when charted and the column is path) rows; and, when charted, the chart's interval,
    buckets, bounds and the period's hours cut at the bounds."""

    domain: int
    filters: Filters
    reading: _Reading
    rows: list[tuple[str, int, dict[int, int]]]
    interval: str = ""
    chart: tuple[list[datetime], list[datetime], Spans] | None = None


async def _top(pool: asyncpg.Pool, who: Principal, domain_id: str, query: TopQuery,
               now: datetime, limits: Limits | None = None) -> _Top:
    """The ranking; charted with ``limits`` (top by interval)."""
    _check_column(query.column)
    async with pool.acquire() as conn:
        domain = await authorize_domain(conn, who, domain_id)
        filters = await filters_of(conn, domain.id, query)
        reading = _reading(query, now, domain.data)
        interval, chart = "", None
        if limits is not None:
            interval = query.clicksChartInterval or default_interval(reading.window)
            chart = _chart(reading, interval, limits)
        if query.column != "path":
            values = await queries.breakdowns(conn, Scope(domain.id), reading.spans,
                                              [query.column], query.limit, filters)
            return _Top(domain.id, filters, reading, [
                (value, clicks, {}) for value, clicks in values[query.column]], interval, chart)
    links = await _top_links(pool, domain.id, reading.spans, query.limit, filters,
                             domain.link_ids, chart)
    return _Top(domain.id, filters, reading, [
        (path, clicks, series) for _, path, clicks, series in links], interval, chart)


async def top(pool: asyncpg.Pool, who: Principal, domain_id: str, query: TopQuery
              ) -> list[dict[str, Any]]:
    ranking = await _top(pool, who, domain_id, query, datetime.now(UTC))
    return [{"column": value, "score": score} for value, score, _ in ranking.rows]


async def top_by_interval(pool: asyncpg.Pool, who: Principal, domain_id: str, query: TopQuery,
                          limits: Limits) -> dict[str, Any]:
    ranking = await _top(pool, who, domain_id, query, datetime.now(UTC), limits)
    assert ranking.chart is not None  # charted: limits given
    buckets, bounds, cut = ranking.chart
    per_value: dict[str, list[int]] = {value: [0] * len(buckets) for value, _, _ in ranking.rows}
    if query.column == "path":  # the series came with the ranking
        for value, _, series in ranking.rows:
            for bucket, clicks in series.items():
                per_value[value][bucket - 1] += clicks
    elif ranking.rows:
        async with pool.acquire() as conn:
            for value, bucket, clicks in await queries.value_series(
                    conn, Scope(ranking.domain), query.column, list(per_value), cut, bounds,
                    ranking.filters):
                per_value[value][bucket - 1] += clicks
    xs = [_iso(bucket) for bucket in buckets]  # once for every dataset
    datasets = [
        {"column": value, "score": score,
         "data": [{"x": x, "y": y} for x, y in zip(xs, per_value[value], strict=True)]}
        for value, score, _ in ranking.rows
    ]
    return {"interval": _interval_info(ranking.reading.window, ranking.interval),
            "datasets": datasets}


async def last_clicks(pool: asyncpg.Pool, who: Principal, domain_id: str,
                      query: LastClicksQuery) -> list[dict[str, Any]]:
    try:
        before = parse_moment(query.beforeDate, UTC, is_end=False) if query.beforeDate else None
        after = parse_moment(query.afterDate, UTC, is_end=False) if query.afterDate else None
    except PeriodError as exc:
        raise BadRequest(str(exc)) from None
    async with pool.acquire() as conn:
        domain = (await authorize_domain(conn, who, domain_id)).id
        link_id = None
        if query.linkId is not None:
            link = await authorize_link(conn, who, query.linkId)
            if link["domain_id"] != domain:
                raise NotFound("Link not found")
            link_id = link["id"]
        rows = await queries.last_clicks(conn, domain, limit=query.limit, before=before,
                                         after=after, link_id=link_id)
    return [
        {"time": _iso(r["ts"]), "linkId": r["link_id"], "path": r["path"], "ip": r["ip"],
         "ua": r["user_agent"], "referer": r["referer"], "refhost": r["referer_host"],
         "country": r["country"], "region": r["region"], "city": r["city"],
         "human": not r["bot"], "browser": r["browser"], "os": r["os"], "device": r["device"],
         "social": r["social"], "utm_source": r["utm_source"], "utm_medium": r["utm_medium"],
         "utm_campaign": r["utm_campaign"]}
        for r in rows
    ]


async def clear_domain(pool: asyncpg.Pool, who: Principal, domain_id: str) -> None:
    async with pool.acquire() as conn:
        domain = await authorize_domain(conn, who, domain_id)
        async with conn.transaction():
            await queries.clear_domain(conn, domain.id)


async def clear_link(pool: asyncpg.Pool, who: Principal, id_string: str) -> None:
    async with pool.acquire() as conn:
        link = await authorize_link(conn, who, id_string)
        async with conn.transaction():
            await queries.clear_link(conn, link["domain_id"], link["id"])
