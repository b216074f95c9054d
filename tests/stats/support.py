"""Helpers of the stats tests: links made by SQL (the management API is not needed),
click events produced straight to a test topic, and rollup probes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.stats import month_carry, repository
from services.stats.repository import DAY_COLUMNS, DIMENSION_COLUMNS, HOUR_COLUMNS
from shared.events import ClickEvent
from tests.conftest import Tenant, unique


async def make_link(db: asyncpg.Pool, tenant: Tenant, path: str | None = None
                    ) -> tuple[int, str]:
    """A link row on the tenant's domain: (id, idString)."""
    path = path or unique("p")
    row = await db.fetchrow(
        """INSERT INTO links (id_string, domain_id, team_id, path, path_key, original_url)
           VALUES ($1, $2, $3, $4, lower($4), 'https://example.com/') RETURNING id, id_string""",
        unique("lnk"), tenant.domain_id, tenant.team_id, path,
    )
    assert row is not None
    return row["id"], row["id_string"]


def click(link_id: int, domain_id: int, *, ts: datetime | None = None, **fields: Any
          ) -> ClickEvent:
    return ClickEvent(link_id=link_id, domain_id=domain_id, path="p", status=302,
                      ts=ts or datetime.now(UTC), **fields)


async def produce(bootstrap: str, topic: str, values: Iterable[tuple[bytes | None, bytes | None]]
                  ) -> None:
    """Sends (key, value) pairs and waits until Kafka has all of them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in values]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def produce_events(bootstrap: str, topic: str, events: Iterable[ClickEvent]) -> None:
    await produce(bootstrap, topic, ((e.key(), e.to_bytes()) for e in events))


async def domain_total(db: asyncpg.Pool, domain_id: int) -> int:
    total: int | None = await db.fetchval(
        "SELECT sum(clicks)::bigint FROM stats_domain_hourly WHERE domain_id = $1", domain_id)
    return total or 0


async def link_totals(db: asyncpg.Pool, domain_id: int) -> dict[int, int]:
    rows = await db.fetch(
        """SELECT link_id, sum(clicks)::bigint AS clicks FROM stats_facts
           WHERE domain_id = $1 GROUP BY link_id""", domain_id)
    return {r["link_id"]: r["clicks"] for r in rows}


def new_id() -> uuid.UUID:
    return uuid.uuid4()


async def check_read_rollups(db: asyncpg.Pool, domain_id: int) -> None:
    """The rollups added for reads (migration 0202) agree with the facts, exactly: each
    dimension value's clicks per UTC hour (the hour columns of the daily rows) and each
    link's cumulative clicks per day of the month."""
    unpivot = ", ".join(f"('{dim}', f.{column})" for dim, column in DIMENSION_COLUMNS.items())
    from_facts = await db.fetch(
        f"""SELECT d.dim, d.value, f.hour, sum(f.clicks)::bigint AS clicks
            FROM stats_facts f CROSS JOIN LATERAL (VALUES {unpivot}) AS d(dim, value)
            WHERE f.domain_id = $1 AND d.value IS NOT NULL GROUP BY 1, 2, 3""", domain_id)
    hours = ", ".join(f"({h}, r.{c})" for h, c in enumerate(HOUR_COLUMNS))
    from_dims = await db.fetch(
        f"""SELECT r.dim, r.value, (r.day::timestamp AT TIME ZONE 'UTC') + hh.h * interval '1 hour'
                   AS hour, hh.clicks, r.clicks AS day_clicks,
                   {" + ".join(f"r.{c}" for c in HOUR_COLUMNS)} AS hour_sum
            FROM stats_domain_dims_daily r CROSS JOIN LATERAL (VALUES {hours}) AS hh(h, clicks)
            WHERE r.domain_id = $1""", domain_id)
    assert all(r["day_clicks"] == r["hour_sum"] for r in from_dims)
    assert ({(r["dim"], r["value"], r["hour"]): r["clicks"] for r in from_dims if r["clicks"]}
            == {(r["dim"], r["value"], r["hour"]): r["clicks"] for r in from_facts})
    monthly = await db.fetch(  # c31 = 0: a row made by a month carry only (0207)
        f"SELECT link_id, month, {', '.join(DAY_COLUMNS)} FROM stats_link_monthly"
        " WHERE domain_id = $1 AND c31 > 0", domain_id)
    daily = await db.fetch(
        """SELECT link_id, (hour AT TIME ZONE 'UTC')::date AS day, sum(clicks)::bigint AS clicks
           FROM stats_facts WHERE domain_id = $1 GROUP BY 1, 2""", domain_id)
    expected: dict[tuple[int, date], list[int]] = {}
    for r in daily:
        days = expected.setdefault((r["link_id"], r["day"].replace(day=1)), [0] * 31)
        for i in range(r["day"].day - 1, 31):
            days[i] += r["clicks"]
    assert {(r["link_id"], r["month"]): [r[c] for c in DAY_COLUMNS] for r in monthly} == expected


async def carry_months(db: asyncpg.Pool, domain_id: int) -> int:
    """Copies every stale month of the domain (migration 0207), as the stats service does
    in the background; returns how many."""
    async with db.acquire() as conn:
        stale = await repository.stale_carry_months(conn, date(9999, 12, 1), 10**6)
        for domain, month in stale:
            if domain == domain_id:
                assert await month_carry.carry(conn, domain, month)
    return sum(domain == domain_id for domain, _ in stale)
