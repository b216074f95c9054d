"""The write-through outbox on the real stack: a change whose Redis write fails (a real
Redis client pointed at a port nobody listens on) is committed with its outbox rows,
and the drainer brings Redis level with Postgres once it can write, tombstones included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from deploy.local.processes import free_port
from services.management.links import repository as links
from services.management.writethrough import Changes, deliver, drain, queue, tombstones_of
from shared.errors import REDIS_OUTAGES
from tests.conftest import Tenant
from tests.management.links_support import Client, assert_in_sync, create, link_row_id, stored

pytestmark = pytest.mark.stack


@pytest.fixture
async def unreachable_redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    try:
        yield client
    finally:
        await client.aclose()


async def _outbox_rows(db: asyncpg.Pool, ids: list[int]) -> int:
    async with db.acquire() as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM record_outbox WHERE id = ANY($1::bigint[])", ids)
    return count


async def _drain_all(db: asyncpg.Pool, redis: aioredis.Redis) -> None:
    while await drain(db, redis, older_than=timedelta(0)):
        pass


async def test_a_failed_write_is_kept_and_drained_when_redis_answers(
    api: Client, tenant: Tenant, db: asyncpg.Pool, redis_client: aioredis.Redis,
    unreachable_redis: aioredis.Redis,
) -> None:
    link_id = await link_row_id(db, (await create(api, tenant))["idString"])
    before = await assert_in_sync(db, redis_client, link_id)

    async with db.acquire() as conn:
        async with conn.transaction():
            await links.bump_versions(conn, [link_id], archived=True)
            queued = await queue(conn, Changes(link_ids=[link_id]))
        assert await deliver(conn, unreachable_redis, queued) is False  # deferred, no raise
    assert await _outbox_rows(db, queued.outbox_ids) == 1
    assert await stored(redis_client, tenant.hostname, before.path) == before  # stale so far

    with pytest.raises(REDIS_OUTAGES):  # still unreachable: the rows stay
        await drain(db, unreachable_redis, older_than=timedelta(0))
    assert await _outbox_rows(db, queued.outbox_ids) == 1

    await _drain_all(db, redis_client)
    assert await _outbox_rows(db, queued.outbox_ids) == 0
    after = await assert_in_sync(db, redis_client, link_id)
    assert after.archived and after.version > before.version


async def test_a_failed_tombstone_is_kept_and_drained(
    api: Client, tenant: Tenant, db: asyncpg.Pool, redis_client: aioredis.Redis,
    unreachable_redis: aioredis.Redis,
) -> None:
    created = await create(api, tenant)
    link_id = await link_row_id(db, created["idString"])
    record = await assert_in_sync(db, redis_client, link_id)

    async with db.acquire() as conn:
        async with conn.transaction():
            removed = await links.delete_links(conn, [link_id])
            queued = await queue(conn, Changes(tombstones=tombstones_of(removed)))
        assert await deliver(conn, unreachable_redis, queued) is False
    still = await stored(redis_client, tenant.hostname, record.path)
    assert still is not None and not still.deleted  # the edge would still redirect

    await _drain_all(db, redis_client)
    gone = await stored(redis_client, tenant.hostname, record.path)
    assert gone is not None and gone.deleted and gone.version > record.version
    assert await _outbox_rows(db, queued.outbox_ids) == 0


async def test_a_delivered_change_leaves_no_outbox_row(
    api: Client, tenant: Tenant, db: asyncpg.Pool, redis_client: aioredis.Redis,
) -> None:
    created = await create(api, tenant)
    link_id = await link_row_id(db, created["idString"])
    async with db.acquire() as conn:
        left: int = await conn.fetchval(
            "SELECT count(*) FROM record_outbox WHERE link_id = $1", link_id)
    assert left == 0
    await assert_in_sync(db, redis_client, link_id)
