"""The click consumer on the real stack: exactly-once rollups with duplicated events,
invalid events dead-lettered, a rebalance between two consumers, and a database error
in the middle of consuming."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from services.stats.app import create_app
from services.stats.batch import PreparedBatch, RawRecord, click_columns, partition_batch, prepare
from services.stats.cleanup import delete_expired_clicks
from services.stats.consumer import apply_batch
from services.stats.repository import write_clicks
from services.stats.settings import Settings
from shared.kafka_admin import ensure_topics
from tests.conftest import StackEnv, Tenant, serve, unique
from tests.helpers import eventually
from tests.stats.support import (
    check_read_rollups,
    click,
    domain_total,
    link_totals,
    make_link,
    produce,
    produce_events,
)

pytestmark = [pytest.mark.stack]

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]


def settings_for(topic: str, group: str | None = None, **extra: object) -> Settings:
    return Settings(clicks_topic=topic, consumer_group=group or unique("group-"),
                    poll_timeout=timedelta(milliseconds=50), **extra)  # type: ignore[arg-type]


async def stored_offsets(db: asyncpg.Pool, group: str, topic: str) -> int:
    total: int | None = await db.fetchval(
        "SELECT sum(next_offset)::bigint FROM stats_offsets WHERE consumer_group = $1"
        " AND topic = $2", group, topic)
    return total or 0


async def test_duplicates_count_once_and_invalid_events_are_dead_lettered(
    migrated: StackEnv, db: asyncpg.Pool, tenant: Tenant, topic: str
) -> None:
    await ensure_topics(migrated.kafka_bootstrap, [topic])
    links = [(await make_link(db, tenant))[0] for _ in range(3)]
    rng = random.Random(5)
    events = [
        click(rng.choice(links), tenant.domain_id, user_agent=rng.choice(AGENTS),
              referer=rng.choice([None, "https://m.facebook.com/x", "https://example.org/"]),
              country=rng.choice([None, "FR", "US"]), utm_source=rng.choice([None, "news"]),
              visitor=f"v{rng.randrange(20)}")
        for _ in range(300)
    ]
    garbage: list[tuple[bytes | None, bytes | None]] = [
        (b"1", b"{not json"), (b"2", None), (b"3", b'{"schema_version": 9}')]
    # Every event twice (a spool replay), with the garbage in between.
    await produce_events(migrated.kafka_bootstrap, topic, events)
    await produce(migrated.kafka_bootstrap, topic, garbage)
    await produce_events(migrated.kafka_bootstrap, topic, events[:150])
    settings = settings_for(topic)
    client = await serve(create_app(settings))
    try:
        messages = len(events) + len(garbage) + 150
        await eventually(lambda: stored_offsets(db, settings.consumer_group, topic),
                         lambda n: n >= messages, timeout=30)
        assert await stored_offsets(db, settings.consumer_group, topic) == messages
        assert await domain_total(db, tenant.domain_id) == len(events)
        per_link = await link_totals(db, tenant.domain_id)
        assert per_link == {link: sum(e.link_id == link for e in events) for link in links}
        assert sum(per_link.values()) == await domain_total(db, tenant.domain_id)
        raw = await db.fetchval("SELECT count(*) FROM stats_clicks WHERE domain_id = $1",
                                tenant.domain_id)
        assert raw == len(events)
        # Dimension rollups add up to the clicks that have the dimension.
        expected_countries = {c: sum(e.country == c for e in events) for c in ("FR", "US")
                              if any(e.country == c for e in events)}
        for table in ("stats_domain_dims_daily", "stats_domain_dims_totals"):
            countries = await db.fetch(
                f"""SELECT value, sum(clicks)::bigint AS n FROM {table}
                    WHERE domain_id = $1 AND dim = 'country' GROUP BY value""",
                tenant.domain_id)
            assert {r["value"]: r["n"] for r in countries} == expected_countries, table
        await check_read_rollups(db, tenant.domain_id)
        # Every grain holds every click once.
        for table in ("stats_domain_daily", "stats_link_totals", "stats_facts"):
            total = await db.fetchval(
                f"SELECT sum(clicks)::bigint FROM {table} WHERE domain_id = $1",
                tenant.domain_id)
            assert total == len(events), table
        socials = await db.fetchval(
            """SELECT sum(clicks) FROM stats_facts WHERE link_id = ANY($1::bigint[])
               AND social = 'facebook'""", links)
        assert socials == sum(e.referer == "https://m.facebook.com/x" for e in events)
        human = await db.fetchval(
            "SELECT sum(human_clicks) FROM stats_domain_hourly WHERE domain_id = $1",
            tenant.domain_id)
        assert human == sum("Googlebot" not in (e.user_agent or "") for e in events)
        visitors = await db.fetchval(
            "SELECT count(*) FROM stats_link_visitors WHERE link_id = ANY($1::bigint[])", links)
        assert visitors == len({(e.link_id, e.visitor) for e in events})

        # The dead-letter topic has the original bytes and the reason.
        dlq = AIOKafkaConsumer(settings.dead_letter_topic,
                               bootstrap_servers=migrated.kafka_bootstrap,
                               auto_offset_reset="earliest", enable_auto_commit=False)
        await dlq.start()
        try:
            dead: list[ConsumerRecord[bytes, bytes]] = []
            async with asyncio.timeout(15):
                while len(dead) < len(garbage):
                    polled = await dlq.getmany(timeout_ms=500)
                    dead += [m for ms in polled.values() for m in ms]
        finally:
            await dlq.stop()
        assert sorted((m.value or b"") for m in dead) == sorted((v or b"") for _, v in garbage)
        reasons = {dict(m.headers)["reason"].decode() for m in dead}
        assert "empty message" in reasons
        assert any("schema_version" in r for r in reasons)
    finally:
        await client.close()


async def test_rebalance_between_two_consumers_keeps_counts_exact(
    migrated: StackEnv, db: asyncpg.Pool, tenant: Tenant, topic: str
) -> None:
    await ensure_topics(migrated.kafka_bootstrap, [topic], partitions=4)
    links = [(await make_link(db, tenant))[0] for _ in range(8)]
    group = unique("group-")
    produced = 0

    async def wave(n: int) -> None:
        nonlocal produced
        await produce_events(migrated.kafka_bootstrap, topic,
                             [click(links[i % len(links)], tenant.domain_id) for i in range(n)])
        produced += n

    first = await serve(create_app(settings_for(topic, group)))
    second = None
    try:
        await wave(500)
        second = await serve(create_app(settings_for(topic, group)))  # rebalance
        await wave(500)
        await asyncio.sleep(1)
        await wave(500)
        await first.close()  # rebalance again: the survivor takes every partition
        await wave(500)
        total = await eventually(lambda: domain_total(db, tenant.domain_id),
                                 lambda n: n >= produced, timeout=45)
        assert total == produced
        await asyncio.sleep(0.5)
        assert await domain_total(db, tenant.domain_id) == produced
        assert sum((await link_totals(db, tenant.domain_id)).values()) == produced
    finally:
        await first.close()
        if second is not None:
            await second.close()


async def test_consumer_survives_a_database_error(
    migrated: StackEnv, db: asyncpg.Pool, tenant: Tenant, topic: str
) -> None:
    """Holding the partition's offset row locked makes the consumer's write time out:
    it must retry from the stored offsets, and count everything exactly once."""
    await ensure_topics(migrated.kafka_bootstrap, [topic], partitions=1)
    link, _ = await make_link(db, tenant)
    settings = settings_for(topic, db_command_timeout=timedelta(seconds=1),
                            retry_initial=timedelta(milliseconds=100))
    async with db.acquire() as conn:
        await conn.execute(
            """INSERT INTO stats_offsets (consumer_group, topic, partition, next_offset)
               VALUES ($1, $2, 0, 0)""", settings.consumer_group, topic)
    client = await serve(create_app(settings))
    try:
        async with db.acquire() as conn:
            # Locked before any event exists, so no batch can slip in ahead of the lock.
            tx = conn.transaction()
            await tx.start()
            await conn.execute(
                "SELECT 1 FROM stats_offsets WHERE consumer_group = $1 FOR UPDATE",
                settings.consumer_group)
            await produce_events(migrated.kafka_bootstrap, topic,
                                 [click(link, tenant.domain_id) for _ in range(50)])
            await asyncio.sleep(2.5)  # at least two failed attempts
            await produce_events(migrated.kafka_bootstrap, topic,
                                 [click(link, tenant.domain_id) for _ in range(50)])
            assert await domain_total(db, tenant.domain_id) == 0
            await tx.rollback()
        total = await eventually(lambda: domain_total(db, tenant.domain_id),
                                 lambda n: n >= 100, timeout=30)
        assert total == 100
    finally:
        await client.close()


async def test_raw_click_retention(migrated: StackEnv, db: asyncpg.Pool, tenant: Tenant
                                   ) -> None:
    link, _ = await make_link(db, tenant)
    now = datetime.now(UTC)
    old = [click(link, tenant.domain_id, ts=now - timedelta(days=40)) for _ in range(3)]
    new = [click(link, tenant.domain_id, ts=now - timedelta(days=1)) for _ in range(2)]
    async with db.acquire() as conn:
        assert await write_clicks(conn, click_columns(old + new)) == 5
    settings = Settings(raw_click_retention=timedelta(days=30), cleanup_batch=2)
    assert await delete_expired_clicks(db, settings) >= 3
    left = await db.fetchval("SELECT count(*) FROM stats_clicks WHERE link_id = $1", link)
    assert left == 2
    assert await domain_total(db, tenant.domain_id) == 5  # rollups are kept


async def test_concurrent_partition_writes_share_domain_rows_exactly_once(
    migrated: StackEnv, db: asyncpg.Pool, tenant: Tenant
) -> None:
    """Partitions' transactions run at once and upsert the same domain rollup rows (few
    hours and dimension values): none may deadlock for good or count twice, and a replay
    of every batch counts nothing."""
    links = [(await make_link(db, tenant))[0] for _ in range(8)]
    rng = random.Random(11)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    settings = settings_for(unique("topic-"))
    batches = []
    for partition in range(4):
        for first in range(0, 600, 200):
            events = [click(links[(partition * 2 + i) % len(links)], tenant.domain_id,
                            ts=hour - timedelta(hours=rng.randrange(3), minutes=i % 60),
                            user_agent=rng.choice(AGENTS), country=rng.choice(["FR", "US"]))
                      for i in range(200)]
            records = [RawRecord(partition, first + i, e.to_bytes())
                       for i, e in enumerate(events)]
            batches.append(prepare(partition_batch(partition, records)))
    by_partition = [[b for b in batches if b.partition == p] for p in range(4)]

    async def write_in_order(partition_batches: list[PreparedBatch]) -> int:
        return sum([await apply_batch(db, settings, b) for b in partition_batches])

    counted = await asyncio.gather(*(write_in_order(bs) for bs in by_partition))
    assert sum(counted) == 4 * 600
    assert await domain_total(db, tenant.domain_id) == 4 * 600
    again = await asyncio.gather(*(write_in_order(bs) for bs in by_partition))
    assert sum(again) == 0
    for table in ("stats_domain_daily", "stats_link_totals", "stats_facts"):
        total = await db.fetchval(
            f"SELECT sum(clicks)::bigint FROM {table} WHERE domain_id = $1", tenant.domain_id)
        assert total == 4 * 600, table
    # The replay added nothing to the read rollups either.
    await check_read_rollups(db, tenant.domain_id)
    assert await stored_offsets(db, settings.consumer_group, settings.clicks_topic) == 4 * 600
