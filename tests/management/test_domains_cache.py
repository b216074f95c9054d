"""`linkhop cache rebuild` brings back one tenant's records after only that tenant's
lh:* keys were deleted (never FLUSHALL: other tests share this Redis)."""

from __future__ import annotations

import sys

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.management.app import create_app
from services.management.settings import Settings
from shared.linkrecord import DomainRecord, LinkRecord, domain_key, link_key
from tests.conftest import StackEnv, make_tenant, serve
from tests.helpers import run_command

pytestmark = [pytest.mark.stack, pytest.mark.slow]


async def tenant_keys(redis: aioredis.Redis, hostname: str) -> list[bytes]:
    keys = [k async for k in redis.scan_iter(match=f"lh:l:{hostname}:*", count=1000)]
    if await redis.exists(domain_key(hostname)):
        keys.append(domain_key(hostname).encode())
    return keys


async def test_cache_rebuild_restores_one_tenants_deleted_records(
    migrated: StackEnv, db: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    tenant = await make_tenant(db, redis_client)
    api = await serve(create_app(Settings()))
    try:
        for path in ("one", "two", "three"):
            answer = await api.post("/links", headers={"Authorization": tenant.key}, json={
                "domain": tenant.hostname, "originalURL": f"https://example.com/{path}",
                "path": path})
            assert answer.status == 200, await answer.text()
        answer = await api.post(f"/domains/settings/{tenant.domain_id}",
                                headers={"Authorization": tenant.key},
                                json={"notFoundRedirect": "https://example.com/missing"})
        assert answer.status == 200
    finally:
        await api.close()
    before = {k: await redis_client.get(k) for k in await tenant_keys(redis_client,
                                                                      tenant.hostname)}
    assert len(before) == 4

    assert await redis_client.delete(*before) == 4  # this tenant's keys only
    assert await tenant_keys(redis_client, tenant.hostname) == []

    code, out, err = await run_command(sys.executable, "-m", "services.cli", "cache",
                                       "rebuild", timeout=120)
    assert code == 0, err
    assert out.startswith("rebuilt ")

    after = {k: await redis_client.get(k) for k in await tenant_keys(redis_client,
                                                                     tenant.hostname)}
    assert after == before
    domain = DomainRecord.model_validate_json(after[domain_key(tenant.hostname).encode()])
    assert domain.not_found_redirect == "https://example.com/missing"
    link = LinkRecord.model_validate_json(after[link_key(tenant.hostname, "two").encode()])
    assert link.url == "https://example.com/two" and not link.deleted
