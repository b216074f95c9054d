"""Short.io's ttl: a link past its time to live is deleted, and leaves a tombstone."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.management.links.ttl import sweep_expired
from tests.conftest import Tenant
from tests.management.links_support import Client, create, link_row_id, stored

pytestmark = pytest.mark.stack


async def test_links_past_their_ttl_are_deleted(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                                redis_client: aioredis.Redis) -> None:
    keep = await create(api, tenant, path="keep", ttl="2099-01-01T00:00:00Z")
    gone = await create(api, tenant, path="gone", ttl="2099-01-01T00:00:00Z")
    gone_id = await link_row_id(db, gone["idString"])
    async with db.acquire() as conn:  # time travel: this link's ttl has passed
        await conn.execute("UPDATE links SET ttl = now() - interval '1 second' WHERE id = $1",
                           gone_id)

    assert await sweep_expired(db, redis_client) >= 1

    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM links WHERE id = $1", gone_id) == 0
    tombstone = await stored(redis_client, tenant.hostname, "gone")
    assert tombstone is not None and tombstone.deleted
    kept = await stored(redis_client, tenant.hostname, "keep")
    assert kept is not None and not kept.deleted and kept.id_string == keep["idString"]
