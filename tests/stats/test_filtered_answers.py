"""Filtered link and domain statistics against sums of the raw clicks: include and
exclude filters, humans and bots, paths, periods with days cut by a zone. Most filters
are answered from the facts (one statement, grouping sets for totals per chart bucket,
breakdowns and clicked links); a domain's answer filtered by values of one dimension
from the filter rollups of its built days and the facts of its other hours, checked
before any day is built, once they are, with late clicks on built days and built again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.stats.filter_rollups import build_stale_days
from services.stats.periods import bucket_start, change, hour_range, period_window, resolve_tz
from services.stats.repository import DIMENSION_COLUMNS
from tests.conftest import Tenant
from tests.stats.support import click, make_link
from tests.stats.test_api import BOT, CHROME, Client, api, post, write

pytestmark = [pytest.mark.stack]
__all__ = ["api"]  # the fixture, used by name

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
PATHS = ("one", "two", "three")
# Filter name of the request -> raw-click column (services.stats.service._FILTER_COLUMNS).
COLUMNS = {"countries": "country", "browsers": "browser", "referers": "referer_host",
           "socials": "social", "utmSources": "utm_source"}
FILTERS: list[dict[str, Any]] = [
    {"include": {"countries": ["US"]}},
    {"include": {"browsers": ["Chrome", "Firefox"]}},
    {"include": {"countries": ["US", "FR"], "browsers": ["Chrome"]}},
    {"exclude": {"countries": ["US"], "referers": ["t.co"]}},
    {"include": {"human": True}, "exclude": {"socials": ["facebook"]}},
    {"include": {"human": False, "paths": ["one", "three", "missing"]}},
    {"exclude": {"paths": ["two"], "utmSources": ["ads"]}},
    {"include": {"socials": ["twitter"], "paths": ["two"]}},
]
PERIODS = [("today", "Asia/Kolkata", "hour"), ("yesterday", "Europe/Paris", None),
           ("last7", "UTC", "hour"), ("last7", "America/Los_Angeles", "day"),
           ("last30", "UTC", None), ("last30", "Asia/Kathmandu", "week"),
           ("total", "UTC", "month")]


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _passes(row: asyncpg.Record, spec: dict[str, Any], link_of: dict[str, int]) -> bool:
    include, exclude = spec.get("include", {}), spec.get("exclude", {})
    for name, column in COLUMNS.items():
        if name in include and row[column] not in include[name]:
            return False
        if name in exclude and row[column] is not None and row[column] in exclude[name]:
            return False
    if "human" in include and row["bot"] == include["human"]:
        return False
    if "paths" in include and row["link_id"] not in {link_of.get(p) for p in include["paths"]}:
        return False
    return not ("paths" in exclude and row["link_id"] in {link_of[p] for p in exclude["paths"]})


async def test_filtered_answers_equal_sums_of_raw_clicks(
    api: Client, db: asyncpg.Pool, tenant: Tenant
) -> None:
    links = [await make_link(db, tenant, path) for path in PATHS]
    now = datetime.now(UTC)
    agents = (CHROME, CHROME, FIREFOX, BOT)
    referers = ("https://www.facebook.com/a", "https://t.co/x", None, "https://example.org/")
    events = [
        click(links[i % 3][0], tenant.domain_id, ts=now - timedelta(hours=h),
              country=("US", "FR", "DE", None)[i % 4], user_agent=agents[i % 7 % 4],
              referer=referers[i % 5 % 4], utm_source=("news", "ads", None)[i % 3 - (i % 2)])
        for i, h in enumerate([0, 0, 0.5, 1, 3, 5, 9, 17, 22, 23.5, 26, 30, 40, 47, 49, 60,
                               24 * 3 + 2, 24 * 6 + 3, 24 * 8, 24 * 9, 24 * 13 + 20, 24 * 20,
                               24 * 20 + 12, 24 * 27, 24 * 31, 24 * 33 + 23, 24 * 40, 24 * 45,
                               24 * 55, 24 * 59 + 5])]
    await write(db, events)
    seen = await _check_answers(api, db, tenant, links, len(events))
    # Every day built, today up to the hour under way.
    assert await build_stale_days(db, 1000, timedelta(0)) > 10
    assert await _check_answers(api, db, tenant, links, len(events)) == seen
    # Late clicks: on a built day (stale until built again) and in a built hour of today.
    late = [click(links[1][0], tenant.domain_id, ts=now - timedelta(hours=24 * 8),
                  country="US", user_agent=FIREFOX),
            click(links[2][0], tenant.domain_id, ts=_hour(now) - timedelta(minutes=30),
                  country="US", user_agent=CHROME)]
    await write(db, late)
    after = await _check_answers(api, db, tenant, links, len(events) + 2)
    assert after > seen
    assert await build_stale_days(db, 1000, timedelta(0)) >= 1
    assert await _check_answers(api, db, tenant, links, len(events) + 2) == after
    assert await build_stale_days(db, 1000, timedelta(0)) == 0  # nothing stale is left


async def _check_answers(api: Client, db: asyncpg.Pool, tenant: Tenant,
                         links: list[tuple[int, str]], expected: int) -> int:
    """Every filter, period and scope against the raw clicks; how many were counted."""
    link_of = {path: link for path, (link, _) in zip(PATHS, links, strict=True)}
    raw = await db.fetch(
        f"""SELECT link_id, ts, bot, {", ".join(DIMENSION_COLUMNS.values())}
            FROM stats_clicks WHERE domain_id = $1""", tenant.domain_id)
    assert len(raw) == expected
    seen = 0
    for spec in FILTERS:
        chosen = [r for r in raw if _passes(r, spec, link_of)]
        for period, tz, interval in PERIODS:
            zone = resolve_tz(tz)
            for scope, url in (("domain", f"/statistics/domain/{tenant.domain_id}"),
                               ("link", f"/statistics/link/{links[0][1]}")):
                in_scope = [r for r in raw if scope == "domain" or r["link_id"] == links[0][0]]
                rows = [r for r in chosen if r in in_scope]
                first = min(_hour(r["ts"]) for r in in_scope)
                body = {"period": period, "tz": tz, **spec} | (
                    {"clicksChartInterval": interval} if interval else {})
                answer = await post(api, tenant, url, body)
                window = period_window(period, datetime.now(UTC), zone, first_data=first)
                lo, hi = hour_range(window.start, window.end)
                current = [r for r in rows if lo <= _hour(r["ts"]) < hi]
                where = (spec, period, tz, scope)
                seen += len(current)
                assert answer["totalClicks"] == len(current), where
                assert answer["humanClicks"] == sum(not r["bot"] for r in current), where
                used = answer["interval"]["clicksChartInterval"]
                points = answer["clickStatistics"]["datasets"][0]["data"]
                chart = dict.fromkeys((p["x"] for p in points), 0)
                for r in current:
                    # A zone's half hour before the period's start is read with the UTC
                    # hour that holds the start, into the first bucket.
                    start = max(_hour(r["ts"]), window.start)
                    chart[bucket_start(start, used, zone).isoformat()] += 1
                assert {p["x"]: p["y"] for p in points} == chart, where
                for dim, column in DIMENSION_COLUMNS.items():
                    counts: dict[str, int] = {}
                    for r in current:
                        if r[column] is not None:
                            counts[r[column]] = counts.get(r[column], 0) + 1
                    scores = [(v[dim], v["score"]) for v in answer[dim]]
                    assert dict(scores) == counts, (where, dim)
                    assert [s for _, s in scores] == sorted(counts.values(), reverse=True)
                clicked = {r["link_id"] for r in current}
                if scope == "domain":
                    assert answer["links"] == len(clicked), where
                if window.prev_start is None:
                    assert answer["totalClicksChange"] == "N/A", where
                    continue
                before = hour_range(window.prev_start, window.start)[0]
                previous = [r for r in rows if before <= _hour(r["ts"]) < lo]
                assert answer["totalClicksChange"] == change(len(current), len(previous)), where
                assert answer["humanClicksChange"] == change(
                    sum(not r["bot"] for r in current),
                    sum(not r["bot"] for r in previous)), where
                if scope == "domain":
                    assert answer["linksChange"] == change(
                        len(clicked), len({r["link_id"] for r in previous})), where
    assert seen > 100  # the filters leave clicks to count
    return seen


async def test_filtered_answer_without_breakdowns(
    api: Client, db: asyncpg.Pool, tenant: Tenant
) -> None:
    """skipTops: totals, chart and links without any dimension's grouping set."""
    (a, _), (b, _) = [await make_link(db, tenant, path) for path in ("a", "b")]
    now = datetime.now(UTC)
    await write(db, [click(a, tenant.domain_id, ts=now, country="US"),
                     click(b, tenant.domain_id, ts=now, country="US", user_agent=BOT),
                     click(b, tenant.domain_id, ts=now - timedelta(days=40), country="US"),
                     click(b, tenant.domain_id, ts=now, country="FR")])
    answer = await post(api, tenant, f"/statistics/domain/{tenant.domain_id}",
                        {"period": "last30", "skipTops": True,
                         "include": {"countries": ["US"]}})
    assert (answer["totalClicks"], answer["humanClicks"], answer["links"]) == (2, 1, 2)
    assert (answer["totalClicksChange"], answer["linksChange"]) == (change(2, 1), change(2, 1))
    assert all(answer[dim] == [] for dim in DIMENSION_COLUMNS)
