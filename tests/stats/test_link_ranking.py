"""Per-link clicks over a range (``queries._link_clicks``: month pieces of the cumulative
monthly rows, full-joined on the link with the cut hours' facts) against the clicks
themselves: the ranking of ``top_links`` and the counts of ``clicks_of_links``, for
ranges over one, two and three months, cut or whole, read with and without stand-ins.
Links are clicked in some months only, or only in hours a range cuts, so every side of
each full join has links the other sides lack. Ranges over two adjacent months read the
later month's rows alone while they carry the earlier one (migration 0207)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.stats import month_carry, queries, repository
from services.stats.batch import click_columns
from services.stats.queries import Filters
from services.stats.repository import write_clicks
from services.stats.service import id_parts
from services.stats.spans import Spans, split
from tests.conftest import Tenant
from tests.stats.support import click, make_link

HOUR = timedelta(hours=1)
# Clicks at fixed UTC instants (link index, instant), past and far from "now", so the
# test does not depend on when it runs: months of 31, 30 and 31 days and their edges.
T0 = datetime(2024, 8, 1, tzinfo=UTC)
CLICKS = [
    (0, T0 + timedelta(days=2, hours=5)),
    (0, T0 + timedelta(days=30, hours=23)),  # Aug 31 23:00
    (0, T0 + timedelta(days=31)),  # Sep 1 00:00
    (0, T0 + timedelta(days=45, hours=12)),
    (1, T0 + timedelta(days=30, hours=22)),  # August only
    (1, T0 + timedelta(days=30, hours=22, minutes=30)),
    (1, T0 + timedelta(days=10)),
    (2, T0 + timedelta(days=61)),  # October only
    (2, T0 + timedelta(days=61, hours=1)),
    (2, T0 + timedelta(days=70, hours=7)),
    (3, T0 + timedelta(days=40, hours=3)),  # one cut hour's clicks, September
    (3, T0 + timedelta(days=40, hours=3, minutes=59)),
    (3, T0 + timedelta(days=40, hours=3, minutes=1)),
    (4, T0 + timedelta(days=15, hours=8)),  # ties with link 2 over some ranges
    (4, T0 + timedelta(days=64, hours=9)),
    (4, T0 + timedelta(days=64, hours=10)),
]
RANGES = [
    (T0, T0 + timedelta(days=92)),  # three whole months
    (T0 + timedelta(days=2, hours=5), T0 + timedelta(days=45, hours=13)),  # cut ends
    (T0 + timedelta(days=30, hours=22), T0 + timedelta(days=31, hours=1)),  # month edge
    (T0 + timedelta(days=40, hours=3), T0 + timedelta(days=40, hours=4)),  # one hour
    (T0 + timedelta(days=40, hours=4), T0 + timedelta(days=71)),  # hour after clicks
    (T0 + timedelta(days=9, hours=23), T0 + timedelta(days=64, hours=10)),  # 3 pieces
    (T0 + timedelta(days=20), T0 + timedelta(days=21)),  # no clicks
    (T0 + timedelta(days=31, hours=1), T0 + timedelta(days=61, hours=1)),  # Sep less 1 h
]


def _expected(lo: datetime, hi: datetime, links: list[int],
              clicks: list[tuple[int, datetime]]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for i, at in clicks:
        if lo <= at.replace(minute=0) < hi:
            counts[links[i]] = counts.get(links[i], 0) + 1
    return counts


@given(st.integers(1, 10**12), st.integers(0, 10**6), st.integers(1, 5))
def test_id_parts_cover_every_id_once(lo: int, span: int, parts: int) -> None:
    ranges = id_parts((lo, lo + span), parts)
    assert 1 <= len(ranges) <= parts
    assert ranges[0][0] == lo and ranges[-1][1] == lo + span
    assert all(a <= b for a, b in ranges)
    assert all(b + 1 == c for (_, b), (c, _) in pairwise(ranges))


async def _ranked_in_parts(conn: Any, domain_id: int, spans: Spans, limit: int, parts: int
                           ) -> list[tuple[int, str, int]]:
    """The ranking as the service puts it together from parts of the link ids."""
    domain = await queries.domain(conn, domain_id)
    assert domain is not None and domain.link_ids is not None
    ids = domain.link_ids
    rows = [row for id_range in id_parts(ids, parts)
            for row in await queries.top_links(conn, domain_id, spans, limit, Filters(),
                                               id_range)]
    return sorted(rows, key=lambda row: (-row[2], row[0]))[:limit]


async def _check_every_range(conn: Any, domain_id: int, links: list[int],
                            clicks: list[tuple[int, datetime]]) -> None:
    paths = {link_id: f"rank{i}" for i, link_id in enumerate(links)}
    first = min(t for _, t in clicks).replace(minute=0)
    last = max(t for _, t in clicks).replace(minute=0)
    for lo, hi in RANGES:
        expected = _expected(lo, hi, links, clicks)
        ranked = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))
        # Without data: cut days as hours; with it: stand-ins less hours where fewer.
        for spans in (split(lo, hi), split(lo, hi, data=(first, last))):
            where = (lo, hi, spans)
            got = await queries.clicks_of_links(conn, domain_id, links, spans)
            assert {k: v for k, v in got.items() if v} == expected, where
            for limit in (1, 2, 10):
                top = await queries.top_links(conn, domain_id, spans, limit, Filters())
                assert top == [(k, paths[k], v) for k, v in ranked[:limit]], where
                for parts in (2, 3):
                    assert await _ranked_in_parts(
                        conn, domain_id, spans, limit, parts) == top, where
            # Every clicked link is in exactly one part, however many parts.
            for parts in (1, 2, 4, 7):
                assert await _ranked_in_parts(conn, domain_id, spans, 100, parts) == [
                    (k, paths[k], v) for k, v in ranked], where
    # A range holding every click reads the all-time totals, one row per link.
    whole = split(first, last + HOUR, whole=True)
    ranked = sorted(_expected(first, last + HOUR, links, clicks).items(),
                    key=lambda kv: (-kv[1], kv[0]))
    assert await queries.top_links(conn, domain_id, whole, 10, Filters()) == [
        (k, paths[k], v) for k, v in ranked]


async def _write(db: asyncpg.Pool, domain_id: int, links: list[int],
                 clicks: list[tuple[int, datetime]]) -> None:
    async with db.acquire() as conn, conn.transaction():
        await write_clicks(conn, click_columns(
            [click(links[i], domain_id, ts=at) for i, at in clicks]))


async def _stale_months(conn: Any, domain_id: int) -> list[date]:
    stale = await repository.stale_carry_months(conn, date(9999, 12, 1), 10**6)
    return sorted(month for domain, month in stale if domain == domain_id)


@pytest.mark.stack
async def test_link_clicks_and_ranking_over_month_pieces_and_cut_hours(
    db: asyncpg.Pool, tenant: Tenant
) -> None:
    """Checked as the month carry (migration 0207) comes and goes: before any month is
    copied (two months' rows joined), copied (one row per link), stale after a late
    click in a copied month (joined again: the copy misses it), copied again, and after
    a link's statistics are cleared."""
    links = [(await make_link(db, tenant, f"rank{i}"))[0] for i in range(5)]
    domain_id = tenant.domain_id
    await _write(db, domain_id, links, CLICKS)
    async with db.acquire() as conn:
        await _check_every_range(conn, domain_id, links, CLICKS)
        months = [date(2024, 9, 1), date(2024, 10, 1), date(2024, 11, 1)]
        assert await _stale_months(conn, domain_id) == months
        for month in months:
            assert await month_carry.carry(conn, domain_id, month)
        assert await _stale_months(conn, domain_id) == []
        await _check_every_range(conn, domain_id, links, CLICKS)

        # The copy is what a two-month range reads while it is current: spoil it and the
        # answer shows it; copying again mends it.
        cut_ends = split(*RANGES[1])
        expected = _expected(*RANGES[1], links, CLICKS)
        await conn.execute("UPDATE stats_link_monthly SET p31 = p31 + 1000 "
                           "WHERE domain_id = $1 AND month = $2 AND link_id = $3",
                           domain_id, months[0], links[0])
        spoiled = await queries.clicks_of_links(conn, domain_id, links, cut_ends)
        assert {k: v for k, v in spoiled.items() if v} != expected
        assert await month_carry.carry(conn, domain_id, months[0])
        await _check_every_range(conn, domain_id, links, CLICKS)

    # A late click in August, on a link clicked in October only: the September copy
    # misses it (and the link has no September row), so it is stale until copied again.
    late = [*CLICKS, (2, T0 + timedelta(days=20, hours=6))]
    await _write(db, domain_id, links, late[-1:])
    async with db.acquire() as conn:
        assert await _stale_months(conn, domain_id) == months[:1]
        await _check_every_range(conn, domain_id, links, late)
        assert await month_carry.carry(conn, domain_id, months[0])
        await _check_every_range(conn, domain_id, links, late)

        # A copy waits for a clear of the domain's statistics under way, and the other
        # way round (repository.lock_carries).
        async with db.acquire() as other, other.transaction():
            await repository.lock_carries(other, domain_id)
            assert not await month_carry.carry(conn, domain_id, months[0])

        # Clearing a link deletes the markers of the months after its months.
        async with conn.transaction():
            await queries.clear_link(conn, domain_id, links[0])
        assert await conn.fetchval(
            "SELECT count(*) FROM stats_month_carry WHERE domain_id = $1", domain_id) == 0
        left = [(i, at) for i, at in late if i != 0]
        await _check_every_range(conn, domain_id, links, left)
        for month in months:
            assert await month_carry.carry(conn, domain_id, month)
        await _check_every_range(conn, domain_id, links, left)
