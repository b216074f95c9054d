"""The edge keeps answering when its dependencies do not: Redis unreachable or missing
records (Postgres fallback, single flight, negative cache, budget), changes seen within
the stated bound, and Kafka unreachable (events spooled, then replayed exactly once)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from shared.kafka_admin import ensure_topics
from shared.linkrecord import RecordStore, domain_key, link_key
from tests.conftest import StackEnv, Tenant, unique
from tests.helpers import eventually
from tests.redirect.helpers import (
    add_link,
    closed_port,
    insert_link,
    settings_for,
    start,
    update_link,
    visit,
    wait_subscribed,
)

pytestmark = pytest.mark.stack


async def test_redis_unreachable_redirects_from_postgres(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool, tenant: Tenant,
) -> None:
    link = await insert_link(db, tenant, url="https://example.com/from-pg")
    client, edge = await start(settings_for(
        tmp_path, clicks_topic=topic, redis_url=f"redis://127.0.0.1:{closed_port()}/0"))
    try:
        for _ in range(5):
            answer = await visit(client, tenant, link.path)
            assert answer.status == 302
            assert answer.headers["Location"] == "https://example.com/from-pg"
        assert (await visit(client, tenant, "unknown-path")).status == 404
        assert edge.resolver.breaker.is_open
        health = await client.get("/health")
        assert health.status == 200
        assert (await health.json())["checks"] == {
            "redis": False, "postgres": True, "kafka": True, "invalidation": False}
    finally:
        await client.close()


async def test_service_starts_with_redis_and_postgres_down(
    migrated: StackEnv, tmp_path: Path, topic: str, tenant: Tenant,
) -> None:
    client, _ = await start(settings_for(
        tmp_path, clicks_topic=topic, redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        database_url=f"postgresql://linkhop@127.0.0.1:{closed_port()}/linkhop"))
    try:
        assert (await client.get("/health")).status == 503
        answer = await visit(client, tenant, "anything")
        assert answer.status == 503
        assert answer.headers["Retry-After"]
        assert (await client.get("/metrics")).status == 200
    finally:
        await client.close()


async def test_missing_keys_are_read_from_postgres_and_refilled(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    link = await add_link(db, redis_client, tenant, url="https://example.com/kept")
    keys = [domain_key(tenant.hostname), link_key(tenant.hostname, link.path.lower())]
    await redis_client.delete(*keys)  # only this test's own keys, never a flush
    client, _ = await start(settings_for(tmp_path, clicks_topic=topic))
    try:
        answer = await visit(client, tenant, link.path)
        assert answer.headers["Location"] == "https://example.com/kept"

        async def present() -> int:
            return int(await redis_client.exists(*keys))

        assert await eventually(present, lambda n: n == 2, timeout=5) == 2
    finally:
        await client.close()


async def test_single_flight_and_negative_cache(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    link = await insert_link(db, tenant, url="https://example.com/only-in-pg")
    # Redis lost this tenant's records, as after a flush (only its own key is deleted).
    await redis_client.delete(domain_key(tenant.hostname))
    client, edge = await start(settings_for(tmp_path, clicks_topic=topic))
    try:
        before = edge.resolver.db_lookups
        answers = await asyncio.gather(*(visit(client, tenant, link.path) for _ in range(30)))
        assert {a.status for a in answers} == {302}
        # one domain query and one link query for 30 concurrent misses
        assert edge.resolver.db_lookups - before == 2

        async def domain_back() -> int:
            return int(await redis_client.exists(domain_key(tenant.hostname)))

        assert await eventually(domain_back, lambda n: n == 1, timeout=5) == 1
        before = edge.resolver.db_lookups
        for _ in range(20):
            assert (await visit(client, tenant, "not-a-link")).status == 404
        assert edge.resolver.db_lookups - before == 1  # then remembered as a miss
    finally:
        await client.close()


async def test_fallback_budget_bounds_queries_while_redis_is_down(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool, tenant: Tenant,
) -> None:
    client, edge = await start(settings_for(
        tmp_path, clicks_topic=topic, redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        db_fallback_rate=1.0, db_fallback_burst=10))
    try:
        before = edge.resolver.db_lookups
        for _ in range(20):
            assert (await visit(client, tenant, "not-a-link")).status == 404
        assert edge.resolver.db_lookups - before == 2  # domain + link, then remembered

        before = edge.resolver.db_lookups
        scan = [await visit(client, tenant, unique("scan")) for _ in range(40)]
        assert {a.status for a in scan} <= {404, 503}
        assert edge.resolver.db_lookups - before <= 10  # the budget, not one per path
        assert edge.resolver.budget_refusals > 0
    finally:
        await client.close()


async def test_concurrent_lookups_share_redis_round_trips(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    links = [await add_link(db, redis_client, tenant) for _ in range(40)]
    client, edge = await start(settings_for(tmp_path, clicks_topic=topic))
    try:
        resolver = edge.resolver
        batches, lookups = resolver.batcher.batches, resolver.batcher.lookups
        results = await asyncio.gather(
            *(resolver.lookup(tenant.hostname, link.path) for link in links))
        assert all(found is not None and found.link_id == link.link_id
                   for (_, found), link in zip(results, links, strict=True))
        assert resolver.batcher.lookups - lookups == 40
        assert resolver.batcher.batches - batches == 1
    finally:
        await client.close()


async def test_lookups_during_the_breaker_trial_ride_it_once_redis_is_back(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    """Redis is back after an outage: the lookups that arrive with the half-open trial
    wait for it and read Redis too, instead of all but one falling back to Postgres."""
    links = [await add_link(db, redis_client, tenant) for _ in range(40)]
    settings = settings_for(tmp_path, clicks_topic=topic, breaker_cooldown=0)
    client, edge = await start(settings)
    try:
        resolver = edge.resolver
        await resolver.lookup(tenant.hostname, links[0].path)  # the domain, cached
        for _ in range(settings.breaker_failures):  # as an outage leaves it
            resolver.breaker.failure()
        assert resolver.breaker.is_open
        before = resolver.db_lookups
        results = await asyncio.gather(
            *(resolver.lookup(tenant.hostname, link.path) for link in links[1:]))
        assert all(found is not None and found.link_id == link.link_id
                   for (_, found), link in zip(results, links[1:], strict=True))
        assert resolver.db_lookups == before  # none of the 39 went to Postgres
        assert not resolver.breaker.is_open
    finally:
        await client.close()


async def test_changed_or_deleted_link_within_the_bound(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    link = await add_link(db, redis_client, tenant, url="https://example.com/old")
    client, edge = await start(settings_for(tmp_path, clicks_topic=topic))
    try:
        await wait_subscribed(edge)
        assert (await visit(client, tenant, link.path)).headers["Location"] == \
            "https://example.com/old"

        async def location() -> str | None:
            answer = await visit(client, tenant, link.path)
            return answer.headers.get("Location") if answer.status == 302 else None

        # Announced change: dropped from the cache at once.
        started = time.monotonic()
        changed = await update_link(db, redis_client, tenant, link,
                                    original_url="https://example.com/new")
        await eventually(location, lambda loc: loc == "https://example.com/new",
                         timeout=5, interval=0.01)
        assert time.monotonic() - started < 0.5

        # A missed announcement (written without PUBLISH): the cache TTL bounds it (2 s).
        record = changed.model_copy(update={"url": "https://example.com/silent",
                                            "version": changed.version + 1})
        await redis_client.set(link_key(tenant.hostname, link.path.lower()),
                               record.model_dump_json())
        started = time.monotonic()
        assert await eventually(location, lambda loc: loc == "https://example.com/silent",
                                timeout=5, interval=0.05) == "https://example.com/silent"
        assert time.monotonic() - started <= edge.settings.cache_ttl.total_seconds() + 0.5

        # Deleted: 404 at once.
        await RecordStore(redis_client).delete_link(
            tenant.hostname, link.path.lower(), link_id=link.link_id,
            domain_id=tenant.domain_id, version=record.version + 1)
        started = time.monotonic()
        await eventually(location, lambda loc: loc is None, timeout=5, interval=0.01)
        assert time.monotonic() - started < 0.5
    finally:
        await client.close()



async def test_kafka_unreachable_spools_then_replays_exactly_once(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    await ensure_topics(migrated.kafka_bootstrap, [topic])
    link = await add_link(db, redis_client, tenant)
    visits = 300
    offline, edge = await start(settings_for(
        tmp_path, clicks_topic=topic, kafka_bootstrap=f"127.0.0.1:{closed_port()}",
        event_queue_size=100))  # small: the overflow path is used too
    try:
        for _ in range(visits // 50):
            answers = await asyncio.gather(
                *(visit(offline, tenant, link.path) for _ in range(50)))
            assert {a.status for a in answers} == {302}  # every visitor redirected
        metrics = await (await offline.get("/metrics")).text()
        assert "linkhop_kafka_up 0" in metrics
    finally:
        await offline.close()  # clean shutdown: what is queued goes to the spool
    assert edge.emitter.spooled == visits and edge.emitter.sent == 0
    assert edge.emitter.dropped == 0
    assert list((tmp_path / "spool").iterdir())

    online, edge = await start(settings_for(tmp_path, clicks_topic=topic,
                                            kafka_retry_interval=0.2))
    live = 20
    try:
        await eventually(lambda: _replayed(edge), lambda n: n >= visits, timeout=20)
        assert edge.emitter.replayed == visits
        for _ in range(live):  # and live events go straight to Kafka again
            assert (await visit(online, tenant, link.path)).status == 302
        await eventually(lambda: _sent(edge), lambda n: n >= live, timeout=10)
    finally:
        await online.close()
    assert not any((tmp_path / "spool").iterdir())  # replayed files are deleted
    assert edge.emitter.spooled == 0

    ids = await _consume_event_ids(migrated.kafka_bootstrap, topic, visits + live)
    assert len(ids) == visits + live  # none lost
    assert len(set(ids)) == visits + live  # none doubled


async def _sent(edge: Any) -> int:
    return int(edge.emitter.sent)


async def _replayed(edge: Any) -> int:
    return int(edge.emitter.replayed)


async def _consume_event_ids(bootstrap: str, topic: str, expected: int) -> list[str]:
    from shared.events import ClickEvent

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=unique("g-"),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    ids: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                ids.extend(str(ClickEvent.from_bytes(r.value).event_id) for r in records)
            if len(ids) >= expected:
                # one more poll: anything doubled would show up now
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    ids.extend(str(ClickEvent.from_bytes(r.value).event_id) for r in records)
                break
    finally:
        await consumer.stop()
    return ids


async def test_failed_send_spools_and_replaces_the_producer(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    """A send that fails (injected: the broker's answer to a restart we cannot cause on
    the shared stack) spools its events and retires the idempotent producer; a new one
    replays them: none lost, none doubled."""
    from aiokafka.errors import KafkaConnectionError

    await ensure_topics(migrated.kafka_bootstrap, [topic])
    link = await add_link(db, redis_client, tenant)
    client, edge = await start(settings_for(tmp_path, clicks_topic=topic,
                                            kafka_retry_interval=0.2))
    try:
        emitter = edge.emitter
        broken = emitter._producer
        assert broken is not None

        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise KafkaConnectionError("injected")

        broken.send_batch = refuse
        for _ in range(30):
            assert (await visit(client, tenant, link.path)).status == 302
        await eventually(lambda: _replayed(edge), lambda n: n >= 30, timeout=15)
        assert emitter.spooled == 30 and emitter.replayed == 30
        assert emitter._producer is not None and emitter._producer is not broken
    finally:
        await client.close()
    ids = await _consume_event_ids(migrated.kafka_bootstrap, topic, 30)
    assert len(ids) == len(set(ids)) == 30


async def test_scanning_client_is_limited_before_any_lookup(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    link = await add_link(db, redis_client, tenant, url="https://example.com/real")
    client, edge = await start(settings_for(tmp_path, clicks_topic=topic, not_found_limit=5))
    try:
        before = edge.resolver.db_lookups
        statuses = [(await visit(client, tenant, unique("scan"))).status for _ in range(8)]
        assert statuses == [404] * 5 + [429] * 3
        assert edge.resolver.db_lookups - before <= 5  # at most one query per 404 allowed
        lookups = edge.resolver.batcher.lookups
        limited = await visit(client, tenant, unique("scan"))
        assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
        assert edge.resolver.batcher.lookups == lookups  # refused before Redis or Postgres
        # Links this client already resolved (cached) keep working.
        assert (await visit(client, tenant, link.path)).status in (429, 302)
    finally:
        await client.close()
