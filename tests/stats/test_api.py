"""The statistics API on the real stack. Clicks are written with the consumer's own
write path (``write_clicks``) at chosen times, so periods and zones are deterministic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.stats.app import create_app
from services.stats.batch import click_columns
from services.stats.filter_rollups import build_stale_days
from services.stats.periods import (
    INTERVALS,
    bucket_start,
    change,
    hour_range,
    period_window,
    resolve_tz,
)
from services.stats.repository import FILTER_ROLLUPS, write_clicks
from services.stats.settings import Settings
from shared import apikey_repository
from shared.events import ClickEvent
from tests.conftest import StackEnv, Tenant, make_tenant, serve
from tests.stats.support import carry_months, check_read_rollups, click, make_link

pytestmark = [pytest.mark.stack]

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
BOT = "Googlebot/2.1 (+http://www.google.com/bot.html)"

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def api(migrated: StackEnv) -> AsyncIterator[Client]:
    client = await serve(create_app(Settings(run_consumer=False)))
    yield client
    await client.close()


async def write(db: asyncpg.Pool, events: list[ClickEvent]) -> None:
    async with db.acquire() as conn, conn.transaction():
        await write_clicks(conn, click_columns(events))


async def get(api: Client, tenant: Tenant, url: str, status: int = 200, **params: Any) -> Any:
    answer = await api.get(url, params=params, headers={"Authorization": tenant.key})
    assert answer.status == status, await answer.text()
    return await answer.json()


async def post(api: Client, tenant: Tenant, url: str, body: Any, status: int = 200) -> Any:
    answer = await api.post(url, json=body, headers={"Authorization": tenant.key})
    assert answer.status == status, await answer.text()
    return await answer.json()


async def test_every_period_and_interval(api: Client, db: asyncpg.Pool, tenant: Tenant) -> None:
    link, id_string = await make_link(db, tenant)
    now = datetime.now(UTC)
    times = [now - timedelta(hours=h) for h in (0, 0, 3, 20, 30, 50, 24 * 8, 24 * 20, 24 * 40,
                                                24 * 70, 24 * 400)]
    await write(db, [click(link, tenant.domain_id, ts=t) for t in times])
    first = min(times)
    for tz in ("UTC", "Asia/Kolkata", "America/Los_Angeles"):
        zone = ZoneInfo(tz)
        for period in ("today", "yesterday", "total", "week", "month", "lastmonth", "last7",
                       "last30"):
            body = await get(api, tenant, f"/statistics/link/{id_string}", period=period, tz=tz,
                             skipTops="true")
            window = period_window(period, datetime.now(UTC), zone, first_data=first)
            lo, hi = hour_range(window.start, window.end)
            expected = sum(lo <= t.replace(minute=0, second=0, microsecond=0) < hi
                           for t in times)
            assert body["totalClicks"] == expected, (tz, period)
            points = body["clickStatistics"]["datasets"][0]["data"]
            assert sum(p["y"] for p in points) == expected
            if window.prev_start is not None:
                plo, phi = hour_range(window.prev_start, window.start)
                prev = sum(plo <= t.replace(minute=0, second=0, microsecond=0) < phi
                           for t in times)
                assert body["totalClicksChange"] == (
                    "N/A" if prev == 0 else f"{(expected - prev) * 100 / prev:.2f}")
    for interval in INTERVALS:
        body = await get(api, tenant, f"/statistics/link/{id_string}", period="last30",
                         clicksChartInterval=interval, tzOffset="120")
        points = body["clickStatistics"]["datasets"][0]["data"]
        assert sum(p["y"] for p in points) == 8
        assert body["interval"]["clicksChartInterval"] == interval
        assert all(p["x"].endswith("+02:00") for p in points)
    too_many = await get(api, tenant, f"/statistics/link/{id_string}", 400, period="total",
                         clicksChartInterval="hour")
    assert "points" in too_many["error"]
    bad = await get(api, tenant, f"/statistics/link/{id_string}", 400, period="fortnight")
    assert bad["success"] is False and bad["statusCode"] == 400
    await get(api, tenant, f"/statistics/link/{id_string}", 400, period="custom")
    await get(api, tenant, f"/statistics/link/{id_string}", 400, tz="Mars/Olympus")


async def test_time_zone_boundary(api: Client, db: asyncpg.Pool, tenant: Tenant) -> None:
    link, id_string = await make_link(db, tenant)
    late = datetime(2026, 1, 10, 23, 30, tzinfo=UTC)
    await write(db, [click(link, tenant.domain_id, ts=late)])
    url = f"/statistics/link/{id_string}"

    async def total(tz: str, day: str) -> int:
        body = await get(api, tenant, url, period="custom", tz=tz, startDate=day, endDate=day,
                         clicksChartInterval="day")
        return int(body["totalClicks"])

    assert await total("UTC", "2026-01-10") == 1
    assert await total("Europe/Paris", "2026-01-10") == 0
    assert await total("Europe/Paris", "2026-01-11") == 1
    assert await total("America/New_York", "2026-01-10") == 1
    body = await get(api, tenant, url, period="custom", tzOffset="60", startDate="2026-01-10",
                     endDate="2026-01-11", clicksChartInterval="day")
    assert body["clickStatistics"]["datasets"][0]["data"] == [
        {"x": "2026-01-10T00:00:00+01:00", "y": 0}, {"x": "2026-01-11T00:00:00+01:00", "y": 1}]


async def test_a_period_starting_inside_a_chart_bucket(
    api: Client, db: asyncpg.Pool, tenant: Tenant
) -> None:
    """A custom period from 14:00 charted by day: the clicks of that day's morning belong
    to the previous period, not to the period's first bucket."""
    link, id_string = await make_link(db, tenant)
    start = datetime(2026, 1, 10, 14, tzinfo=UTC)
    await write(db, [click(link, tenant.domain_id, ts=start - timedelta(hours=3, minutes=30)),
                     click(link, tenant.domain_id, ts=start + timedelta(hours=9))])
    ms = int(start.timestamp() * 1000)
    body = await get(api, tenant, f"/statistics/link/{id_string}", period="custom", tz="UTC",
                     startDate=str(ms), endDate=str(ms + 86_400_000),
                     clicksChartInterval="day", skipTops="true")
    assert body["totalClicks"] == 1 and body["totalClicksChange"] == "0.00"
    assert [p["y"] for p in body["clickStatistics"]["datasets"][0]["data"]] == [1, 0]


async def test_link_clicks_of_a_total_that_misses_a_click_read_from_the_first_one(
    api: Client, db: asyncpg.Pool, tenant: Tenant
) -> None:
    """A "total" that does not hold every click is read day by day. Here one click is
    stamped two days ahead, as a skewed edge clock can. In a half-hour zone the same
    happens every day, in the half hour before local midnight. The days read start with
    the domain's first click: a month of rows, not every month since 1970. That was 684
    joined pieces, past the 5 s statement bound: a 503."""
    link, id_string = await make_link(db, tenant)
    now = datetime.now(UTC)
    await write(db, [click(link, tenant.domain_id, ts=now - timedelta(days=40)),
                     click(link, tenant.domain_id, ts=now + timedelta(days=2))])
    clicks = await get(api, tenant, f"/statistics/domain/{tenant.domain_id}/link_clicks",
                       ids=id_string, period="total", tz="UTC")
    assert clicks == {id_string: 1}  # the period ends tonight, before the later click


async def test_breakdowns_filters_and_domain_endpoints(
    api: Client, db: asyncpg.Pool, tenant: Tenant
) -> None:
    a, a_id = await make_link(db, tenant, "alpha")
    b, b_id = await make_link(db, tenant, "beta")
    now = datetime.now(UTC)
    events = (
        [click(a, tenant.domain_id, ts=now, country="FR", user_agent=CHROME,
               referer="https://www.facebook.com/", utm_source="news", visitor="v1")] * 1
        + [click(a, tenant.domain_id, ts=now, country="FR", user_agent=CHROME, visitor="v2")
           for _ in range(3)]
        + [click(a, tenant.domain_id, ts=now, country="US", user_agent=BOT, visitor="v2")
           for _ in range(2)]
        + [click(b, tenant.domain_id, ts=now, country="US", user_agent=CHROME,
                 referer="https://example.org/x") for _ in range(4)]
    )
    await write(db, events)
    body = await get(api, tenant, f"/statistics/link/{a_id}", period="today")
    assert (body["totalClicks"], body["humanClicks"], body["uniqueVisitors"]) == (6, 4, 2)
    assert body["country"][0] == {"country": "FR", "score": 4, "countryName": "France"}
    assert {r["browser"]: r["score"] for r in body["browser"]} == {"Chrome": 4, "Googlebot": 2}
    assert body["social"] == [{"social": "facebook", "score": 1}]
    assert body["referer"] == [{"referer": "facebook.com", "score": 1}]
    assert body["utm_source"] == [{"utm_source": "news", "score": 1}]
    assert {r["device"]: r["score"] for r in body["device"]} == {"desktop": 4, "bot": 2}

    # POST filters: a filter on one dimension, a breakdown by another.
    filtered = await post(api, tenant, f"/statistics/link/{a_id}",
                          {"period": "today", "include": {"countries": ["US"]}})
    assert filtered["totalClicks"] == 2 and filtered["browser"] == [
        {"browser": "Googlebot", "score": 2}]
    human = await post(api, tenant, f"/statistics/link/{a_id}",
                       {"period": "today", "include": {"human": True},
                        "exclude": {"socials": ["facebook"]}})
    assert human["totalClicks"] == 3
    await post(api, tenant, f"/statistics/link/{a_id}", {"include": {"colors": ["red"]}}, 400)

    domain = await get(api, tenant, f"/statistics/domain/{tenant.domain_id}", period="today")
    assert (domain["totalClicks"], domain["links"], domain["clicksPerLink"]) == (10, 2, 5.0)
    by_path = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}",
                         {"period": "today", "include": {"paths": ["beta"]}})
    assert by_path["totalClicks"] == 4 and by_path["links"] == 1
    by_country = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}",
                            {"period": "today", "include": {"countries": ["US"]}})
    assert (by_country["totalClicks"], by_country["humanClicks"], by_country["links"]) == (6, 4, 2)
    assert {r["browser"]: r["score"] for r in by_country["browser"]} == {
        "Chrome": 4, "Googlebot": 2}
    no_bots = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}/top_by_interval",
                         {"column": "country", "period": "today", "include": {"human": True}})
    assert [(d["column"], d["score"]) for d in no_bots["datasets"]] == [("FR", 4), ("US", 4)]

    clicks = await get(api, tenant, f"/statistics/domain/{tenant.domain_id}/link_clicks",
                       ids=f"{a_id},{b_id},nosuch")
    assert clicks == {a_id: 6, b_id: 4}

    top = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}/top",
                     {"column": "path", "period": "today"})
    assert top == [{"column": "alpha", "score": 6}, {"column": "beta", "score": 4}]
    top = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}/top",
                     {"column": "country", "period": "today", "limit": 1})
    assert top == [{"column": "US", "score": 6}]
    await post(api, tenant, f"/statistics/domain/{tenant.domain_id}/top", {"column": "ip"}, 400)
    series = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}/top_by_interval",
                        {"column": "browser", "period": "today", "clicksChartInterval": "hour"})
    assert [(d["column"], d["score"], sum(p["y"] for p in d["data"]))
            for d in series["datasets"]] == [("Chrome", 8, 8), ("Googlebot", 2, 2)]
    paths = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}/top_by_interval",
                       {"column": "path", "period": "last7"})
    assert [(d["column"], sum(p["y"] for p in d["data"])) for d in paths["datasets"]] == [
        ("alpha", 6), ("beta", 4)]

    last = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}/last_clicks",
                      {"limit": 3})
    assert len(last) == 3 and {"time", "path", "ip", "ua", "human", "browser"} <= set(last[0])
    only_b = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}/last_clicks",
                        {"linkId": b_id})
    assert len(only_b) == 4

    # Clearing one link takes it out of the domain's numbers; clearing the domain empties it.
    # The filter rollups of today (built as if its hours had all ended) go with the link:
    # built again later, from the facts left.
    filter_days = "SELECT count(*) FROM stats_filter_days WHERE domain_id = $1"
    assert await build_stale_days(db, 1000, timedelta(0), datetime.now(UTC) + timedelta(days=1))
    assert await db.fetchval(filter_days, tenant.domain_id) == 1
    answer = await api.delete(f"/statistics/link/{b_id}", headers={"Authorization": tenant.key})
    assert answer.status == 200
    await check_read_rollups(db, tenant.domain_id)  # the link is out of every rollup
    assert await db.fetchval(filter_days, tenant.domain_id) == 0
    us = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}",
                    {"period": "today", "include": {"countries": ["US"]}})
    assert (us["totalClicks"], us["links"]) == (2, 1)
    assert await build_stale_days(db, 1000, timedelta(0), datetime.now(UTC) + timedelta(days=1))
    domain = await get(api, tenant, f"/statistics/domain/{tenant.domain_id}", period="today")
    assert domain["totalClicks"] == 6 and domain["country"] == [
        {"country": "FR", "score": 4, "countryName": "France"},
        {"country": "US", "score": 2, "countryName": "United States"}]
    answer = await api.delete(f"/statistics/domain/{tenant.domain_id}/statistics",
                              headers={"Authorization": tenant.key})
    assert answer.status == 200
    domain = await get(api, tenant, f"/statistics/domain/{tenant.domain_id}", period="total")
    assert domain["totalClicks"] == 0 and domain["browser"] == []
    for table in FILTER_ROLLUPS:  # built again before the domain was cleared (below)
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE domain_id = $1",
                                 tenant.domain_id) == 0
    assert await post(api, tenant, f"/statistics/domain/{tenant.domain_id}/last_clicks", {}) == []


async def test_keys_and_visibility(api: Client, db: asyncpg.Pool, tenant: Tenant,
                                   redis_client: aioredis.Redis) -> None:
    _, id_string = await make_link(db, tenant)
    other = await make_tenant(db, redis_client)
    for url in (f"/statistics/link/{id_string}", f"/statistics/domain/{tenant.domain_id}"):
        assert (await api.get(url)).status == 401
        assert (await api.get(url, headers={"Authorization": "sk_nope"})).status == 401
        answer = await api.get(url, headers={"Authorization": other.key})
        assert answer.status == 404
        assert (await answer.json())["success"] is False
    async with db.acquire() as conn:
        public, _ = await apikey_repository.create_key(conn, team_id=tenant.team_id,
                                                       kind="public")
        restricted, _ = await apikey_repository.create_key(
            conn, team_id=tenant.team_id, kind="private", domain_id=tenant.domain_id)
        second = await conn.fetchval(
            """INSERT INTO domains (team_id, hostname, unicode_hostname)
               VALUES ($1, $2, $2) RETURNING id""",
            tenant.team_id, f"second-{tenant.hostname}")
    answer = await api.get(f"/statistics/link/{id_string}", headers={"Authorization": public})
    assert answer.status == 403
    ok = await api.get(f"/statistics/domain/{tenant.domain_id}",
                       headers={"Authorization": f"Bearer {restricted}"})
    assert ok.status == 200
    answer = await api.get(f"/statistics/domain/{second}", headers={"Authorization": restricted})
    assert answer.status == 404
    answer = await api.get("/statistics/domain/notanumber", headers={"Authorization": tenant.key})
    assert answer.status == 404
    answer = await api.post(f"/statistics/domain/{tenant.domain_id}/top", data=b"[1",
                            headers={"Authorization": tenant.key})
    assert answer.status == 400

    document = await (await api.get("/openapi.json")).json()
    assert "/statistics/domain/{domainId}/top_by_interval" in document["paths"]
    assert set(document["paths"]["/statistics/link/{linkId}"]) == {"get", "post", "delete"}


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("carried", [False, True], ids=["as written", "months carried"])
async def test_domain_answers_are_exact_in_every_zone_and_period(
    api: Client, db: asyncpg.Pool, tenant: Tenant, carried: bool
) -> None:
    """Whole days come from the daily rollups, cut days from the hourly ones, periods
    holding everything from the totals: every answer must equal the hour-by-hour sums,
    whether the links' rows of each month carry the month before (migration 0207) or
    not."""
    links = [await make_link(db, tenant, path) for path in ("one", "two", "three")]
    now = datetime.now(UTC)
    offsets = [0, 0, 1, 5, 22, 23.5, 26, 47, 49, 24 * 6 + 3, 24 * 9, 24 * 20 + 12, 24 * 31,
               24 * 33 + 23, 24 * 45, 24 * 61 + 1, 24 * 64]
    clicks = [(links[i % 3][0], now - timedelta(hours=h), ("FR", "US", "DE")[i % 2 + (i % 5 == 0)])
              for i, h in enumerate(offsets)]
    await write(db, [click(link, tenant.domain_id, ts=t, country=c) for link, t, c in clicks])
    if carried:
        assert await carry_months(db, tenant.domain_id) >= 2  # 64 days: three months
    first = min(_hour(t) for _, t, _ in clicks)
    path_of = {link: path for (link, _), path in zip(links, ("one", "two", "three"), strict=True)}
    url = f"/statistics/domain/{tenant.domain_id}"

    def inside(lo: datetime, hi: datetime) -> list[tuple[int, datetime, str]]:
        return [(link, _hour(t), c) for link, t, c in clicks if lo <= _hour(t) < hi]

    for tz in ("UTC", "Europe/Paris", "Asia/Kolkata", "Asia/Kathmandu", "America/Los_Angeles",
               "+14:00"):
        zone = resolve_tz(tz)
        for period, interval in (("today", "hour"), ("yesterday", None), ("total", "week"),
                                 ("week", "day"), ("month", None), ("lastmonth", "day"),
                                 ("last7", "hour"), ("last30", None), ("last30", "month")):
            params: dict[str, Any] = {"period": period, "tz": tz} | (
                {"clicksChartInterval": interval} if interval else {})
            body = await get(api, tenant, url, **params)
            window = period_window(period, datetime.now(UTC), zone, first_data=first)
            lo, hi = hour_range(window.start, window.end)
            current = inside(lo, hi)
            where = (tz, period, interval)
            assert body["totalClicks"] == len(current), where
            assert body["links"] == len({link for link, _, _ in current}), where
            points = body["clickStatistics"]["datasets"][0]["data"]
            used = body["interval"]["clicksChartInterval"]
            expected_chart = dict.fromkeys((p["x"] for p in points), 0)
            for _, hour, _ in current:
                # A zone's half hour before the period's start is read with the UTC hour
                # that holds the start, into the first bucket.
                start = max(hour, window.start)
                expected_chart[bucket_start(start, used, zone).isoformat()] += 1
            assert {p["x"]: p["y"] for p in points} == expected_chart, where
            countries: dict[str, int] = {}
            for _, _, country in current:
                countries[country] = countries.get(country, 0) + 1
            assert {r["country"]: r["score"] for r in body["country"]} == countries, where
            if window.prev_start is not None:
                previous = inside(hour_range(window.prev_start, window.start)[0], lo)
                assert body["totalClicksChange"] == change(len(current), len(previous)), where
                assert body["linksChange"] == change(
                    len({link for link, _, _ in current}),
                    len({link for link, _, _ in previous})), where
            per_link: dict[int, int] = {}
            for link, _, _ in current:
                per_link[link] = per_link.get(link, 0) + 1
            ranked = sorted(per_link.items(), key=lambda kv: (-kv[1], kv[0]))
            top = await post(api, tenant, f"{url}/top", {"column": "path"} | params)
            assert top == [{"column": path_of[k], "score": v} for k, v in ranked], where
            series = await post(api, tenant, f"{url}/top_by_interval",
                                {"column": "path"} | params)
            for dataset in series["datasets"]:
                link = next(k for k, p in path_of.items() if p == dataset["column"])
                expected = dict.fromkeys((p["x"] for p in dataset["data"]), 0)
                for clicked, hour, _ in current:
                    if clicked == link:
                        expected[bucket_start(max(hour, window.start), used,
                                              zone).isoformat()] += 1
                assert {p["x"]: p["y"] for p in dataset["data"]} == expected, where
            by_country = await post(api, tenant, f"{url}/top_by_interval",
                                    {"column": "country"} | params)
            assert {d["column"]: sum(p["y"] for p in d["data"])
                    for d in by_country["datasets"]} == countries, where
            ids = ",".join(id_string for _, id_string in links)
            answer = await get(api, tenant, f"{url}/link_clicks", ids=ids, **params)
            assert answer == {id_string: per_link.get(link, 0) for link, id_string in links}
