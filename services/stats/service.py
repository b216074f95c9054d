"""The statistics answers: authorisation of the domain or link, periods resolved in the
caller's zone, and the rollup reads shaped like Short.io's statistics API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
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
    chart,
    default_interval,
    hour_range,
    parse_moment,
    period_window,
    resolve_tz,
    tz_name,
)
from services.stats.queries import Filters, Scope
from services.stats.repository import DIMENSION_COLUMNS
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


async def authorize_domain(conn: Any, who: Principal, domain_id: str) -> int:
    """The domain's id when this key may read it; 404 otherwise (as if it did not exist)."""
    try:
        parsed = int(domain_id)
    except ValueError:
        raise NotFound("Domain not found") from None
    team = await queries.domain_team(conn, parsed) if 0 < parsed < 2**63 else None
    if team is None or not who.may_use_domain(parsed, team):
        raise NotFound("Domain not found")
    return parsed


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


async def _statistics(conn: Any, scope: Scope, query: StatsQuery, limits: Limits,
                      now: datetime) -> tuple[dict[str, Any], Window, Filters]:
    filters = await filters_of(conn, scope.domain_id, query)
    first = await queries.first_hour(conn, scope) if query.period == "total" else None
    window = _window(query, first, now)
    interval = query.clicksChartInterval or default_interval(window)
    lo, hi = hour_range(window.start, window.end)
    read_lo = lo
    if window.prev_start is not None:
        read_lo = min(lo, hour_range(window.prev_start, window.start)[0])
    rows = await queries.hourly(conn, scope, read_lo, hi, filters)
    current = [r for r in rows if r[0] >= lo]
    total, human = sum(r[1] for r in current), sum(r[2] for r in current)
    answer: dict[str, Any] = {"totalClicks": total, "humanClicks": human}
    if window.prev_start is not None:
        previous = [r for r in rows if r[0] < lo]
        answer["totalClicksChange"] = change(total, sum(r[1] for r in previous))
        answer["humanClicksChange"] = change(human, sum(r[2] for r in previous))
    else:
        answer["totalClicksChange"] = answer["humanClicksChange"] = "N/A"
    try:
        series = chart(((h, c) for h, c, _ in current), window, interval, limits.chart_points)
    except PeriodError as exc:
        raise BadRequest(str(exc)) from None
    answer["clickStatistics"] = {"datasets": [{"label": "clicks", "data": _points(series)}]}
    answer["interval"] = _interval_info(window, interval)
    tops = {} if query.skipTops else await queries.breakdowns(
        conn, scope, lo, hi, DIMENSIONS, limits.top, filters)
    for dim in DIMENSIONS:
        answer[dim] = _breakdown(dim, tops.get(dim, []))
    return answer, window, filters


async def link_statistics(pool: asyncpg.Pool, who: Principal, id_string: str,
                          query: StatsQuery, limits: Limits) -> dict[str, Any]:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        link = await authorize_link(conn, who, id_string)
        scope = Scope(link["domain_id"], link["id"])
        answer, window, _ = await _statistics(conn, scope, query, limits, now)
        lo, hi = hour_range(window.start, window.end)
        answer["uniqueVisitors"] = await queries.unique_visitors(conn, link["id"], lo, hi)
    return answer


async def domain_statistics(pool: asyncpg.Pool, who: Principal, domain_id: str,
                            query: StatsQuery, limits: Limits) -> dict[str, Any]:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        scope = Scope(await authorize_domain(conn, who, domain_id))
        answer, window, filters = await _statistics(conn, scope, query, limits, now)
        lo, hi = hour_range(window.start, window.end)
        links = await queries.clicked_links(conn, scope.domain_id, lo, hi, filters)
        answer["links"] = links
        if window.prev_start is not None:
            plo, phi = hour_range(window.prev_start, window.start)
            answer["linksChange"] = change(
                links, await queries.clicked_links(conn, scope.domain_id, plo, phi, filters))
        else:
            answer["linksChange"] = "N/A"
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
        window = _window(query, datetime(1970, 1, 1, tzinfo=UTC), now)
        lo, hi = hour_range(window.start, window.end)
        known = await queries.links_by_id_strings(conn, domain, ids)
        clicks = await queries.clicks_of_links(conn, domain, list(known.values()), lo, hi)
    return {id_string: clicks.get(link_id, 0) for id_string, link_id in known.items()}


def _check_column(column: str) -> None:
    if column != "path" and column not in DIMENSION_COLUMNS:
        raise BadRequest(f"column: one of path, {', '.join(DIMENSIONS)}")


async def _top(conn: Any, domain: int, query: TopQuery, lo: datetime, hi: datetime,
               filters: Filters) -> list[tuple[str, int, int | None]]:
    """(value, clicks, link id when the column is path)."""
    if query.column == "path":
        links = await queries.top_links(conn, domain, lo, hi, query.limit, filters)
        return [(path, clicks, link_id) for link_id, path, clicks in links]
    values = await queries.breakdowns(conn, Scope(domain), lo, hi, [query.column], query.limit,
                                      filters)
    return [(value, clicks, None) for value, clicks in values[query.column]]


async def top(pool: asyncpg.Pool, who: Principal, domain_id: str, query: TopQuery
              ) -> list[dict[str, Any]]:
    _check_column(query.column)
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        domain = await authorize_domain(conn, who, domain_id)
        filters = await filters_of(conn, domain, query)
        first = await queries.first_hour(conn, Scope(domain)) if query.period == "total" else None
        window = _window(query, first, now)
        lo, hi = hour_range(window.start, window.end)
        rows = await _top(conn, domain, query, lo, hi, filters)
    return [{"column": value, "score": score} for value, score, _ in rows]


async def top_by_interval(pool: asyncpg.Pool, who: Principal, domain_id: str, query: TopQuery,
                          limits: Limits) -> dict[str, Any]:
    _check_column(query.column)
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        domain = await authorize_domain(conn, who, domain_id)
        filters = await filters_of(conn, domain, query)
        first = await queries.first_hour(conn, Scope(domain)) if query.period == "total" else None
        window = _window(query, first, now)
        interval = query.clicksChartInterval or default_interval(window)
        lo, hi = hour_range(window.start, window.end)
        rows = await _top(conn, domain, query, lo, hi, filters)
        per_value: dict[str, list[tuple[datetime, int]]] = {value: [] for value, _, _ in rows}
        if query.column == "path":
            paths = {link_id: value for value, _, link_id in rows if link_id is not None}
            for link_id, hour, clicks in await queries.link_series(
                    conn, domain, list(paths), lo, hi, filters):
                per_value[paths[link_id]].append((hour, clicks))
        elif rows:
            for value, hour, clicks in await queries.value_series(
                    conn, Scope(domain), query.column, list(per_value), lo, hi, filters):
                per_value[value].append((hour, clicks))
    try:
        datasets = [
            {"column": value, "score": score,
             "data": _points(chart(per_value[value], window, interval, limits.chart_points))}
            for value, score, _ in rows
        ]
    except PeriodError as exc:
        raise BadRequest(str(exc)) from None
    return {"interval": _interval_info(window, interval), "datasets": datasets}


async def last_clicks(pool: asyncpg.Pool, who: Principal, domain_id: str,
                      query: LastClicksQuery) -> list[dict[str, Any]]:
    try:
        before = parse_moment(query.beforeDate, UTC, is_end=False) if query.beforeDate else None
        after = parse_moment(query.afterDate, UTC, is_end=False) if query.afterDate else None
    except PeriodError as exc:
        raise BadRequest(str(exc)) from None
    async with pool.acquire() as conn:
        domain = await authorize_domain(conn, who, domain_id)
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
            await queries.clear_domain(conn, domain)


async def clear_link(pool: asyncpg.Pool, who: Principal, id_string: str) -> None:
    async with pool.acquire() as conn:
        link = await authorize_link(conn, who, id_string)
        async with conn.transaction():
            await queries.clear_link(conn, link["domain_id"], link["id"])
