"""Secrets stay secret: after an API key and a password-protected link are created (and
the password is tried at the edge), neither the key nor the password appears in any row
of any table of the database, in Redis, in the logs, or in any later API answer."""

from __future__ import annotations

import logging
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.management.app import create_app as management_app
from services.management.settings import Settings as ManagementSettings
from services.redirect.app import create_app as redirect_app
from services.redirect.settings import Settings as RedirectSettings
from services.stats.app import create_app as stats_app
from services.stats.settings import Settings as StatsSettings
from tests.conftest import StackEnv, Tenant, serve

pytestmark = pytest.mark.stack


async def _rows_containing(db: asyncpg.Pool, secret: str) -> dict[str, int]:
    found: dict[str, int] = {}
    async with db.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')")
        for table in tables:
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            count = await conn.fetchval(
                f"SELECT count(*) FROM {name} AS t WHERE strpos(t::text, $1) > 0", secret)
            if count:
                found[name] = count
    return found


async def _redis_containing(redis: aioredis.Redis, hostname: str, secret: str) -> list[str]:
    hits: list[str] = []
    async for raw_key in redis.scan_iter(match="*", count=1000):
        key = raw_key.decode(errors="replace") if isinstance(raw_key, bytes) else str(raw_key)
        if secret in key:
            hits.append(key)
            continue
        if hostname not in key:
            continue  # only the tenant's values are read (the Redis is shared)
        kind = await redis.type(raw_key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            value = await redis.get(raw_key) or b""
        elif kind == "hash":
            value = repr(await redis.hgetall(raw_key)).encode()  # type: ignore[misc]
        else:
            value = b""
        if secret.encode() in value:
            hits.append(key)
    return hits


async def test_no_secret_is_stored_logged_or_shown(
    migrated: StackEnv, db: asyncpg.Pool, redis_client: aioredis.Redis, tenant: Tenant,
    caplog: pytest.LogCaptureFixture, topic: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    password = f"pw-{uuid.uuid4().hex}"
    management = await serve(management_app(ManagementSettings()))
    stats = await serve(stats_app(StatsSettings(run_consumer=False)))
    redirect = await serve(redirect_app(RedirectSettings(clicks_topic=topic)))
    auth = {"Authorization": tenant.key}
    try:
        created = await management.post("/api/keys", json={"kind": "private"}, headers=auth)
        assert created.status == 200, await created.text()
        new_key = (await created.json())["key"]
        link_answer = await management.post("/links", headers=auth, json={
            "domain": tenant.hostname, "originalURL": "https://example.com/secret",
            "password": password})
        assert link_answer.status == 200, await link_answer.text()
        link = await link_answer.json()
        assert password not in await link_answer.text()

        # The edge: the form, a wrong and the right password (cookie must not carry it).
        page = await redirect.get(f"/{link['path']}", headers={"Host": tenant.hostname})
        assert password not in await page.text()
        for attempt in ("wrong", password):
            answer = await redirect.post(f"/{link['path']}", data={"password": attempt},
                                         headers={"Host": tenant.hostname},
                                         allow_redirects=False)
            assert answer.status in (303, 403), await answer.text()
            assert password not in str(answer.headers)
            assert password not in await answer.text()

        # Every later answer: link info, lists, keys, stats.
        later = [
            await management.get(f"/links/{link['idString']}", headers=auth),
            await management.get(f"/api/links?domain_id={tenant.domain_id}", headers=auth),
            await management.get(f"/links/expand?domain={tenant.hostname}&path={link['path']}",
                                 headers=auth),
            await management.get("/api/keys", headers=auth),
            await management.get("/api/keys", headers={"Authorization": new_key}),
            await stats.get(f"/statistics/link/{link['idString']}", headers=auth),
        ]
        for answer in later:
            text = await answer.text()
            assert answer.status == 200, text
            for secret in (password, new_key, tenant.key):
                assert secret not in text, (answer.url, secret[:6])
            assert password not in str(answer.headers)
    finally:
        for client in (management, stats, redirect):
            await client.close()

    for secret in (password, new_key, tenant.key):
        assert await _rows_containing(db, secret) == {}, secret[:6]
        assert await _redis_containing(redis_client, tenant.hostname, secret) == []
        assert secret not in caplog.text, secret[:6]
    assert caplog.records  # the services did log (access log, warnings): it was scanned
