"""Helpers for the link, targeting and QR tests: the app under test, and the check that
Redis holds exactly what shared.record_repository compiles from Postgres."""

from __future__ import annotations

from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from shared import apikey_repository
from shared.apikeys import KeyKind
from shared.linkrecord import LinkRecord, link_key
from shared.record_repository import fetch_link_record_by_id
from tests.conftest import Tenant

Client = TestClient[web.Request, web.Application]




def auth(tenant: Tenant | str) -> dict[str, str]:
    return {"Authorization": tenant if isinstance(tenant, str) else tenant.key}


async def new_key(db: asyncpg.Pool, tenant: Tenant, *, kind: KeyKind = "private",
                  domain_id: int | None = None) -> str:
    async with db.acquire() as conn:
        key, _ = await apikey_repository.create_key(
            conn, team_id=tenant.team_id, kind=kind, domain_id=domain_id)
    return key


async def create(api: Client, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"domain": tenant.hostname, "originalURL": "https://example.com/x"} | fields
    answer = await api.post("/links", json=body, headers=auth(tenant))
    assert answer.status == 200, await answer.text()
    result: dict[str, Any] = await answer.json()
    return result


async def stored(redis: aioredis.Redis, hostname: str, path_key: str) -> LinkRecord | None:
    raw = await redis.get(link_key(hostname, path_key))
    return None if raw is None else LinkRecord.model_validate_json(raw)


async def assert_in_sync(db: asyncpg.Pool, redis: aioredis.Redis, link_id: int) -> LinkRecord:
    """The Redis record of the link equals what Postgres compiles to, version included."""
    async with db.acquire() as conn:
        compiled = await fetch_link_record_by_id(conn, link_id)
    assert compiled is not None
    hostname, path_key, record = compiled
    assert await stored(redis, hostname, path_key) == record
    return record


async def link_row_id(db: asyncpg.Pool, id_string: str) -> int:
    async with db.acquire() as conn:
        link_id: int = await conn.fetchval("SELECT id FROM links WHERE id_string = $1",
                                           id_string)
    return link_id


async def count_links(db: asyncpg.Pool, domain_id: int) -> int:
    async with db.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM links WHERE domain_id = $1",
                                         domain_id)
    return count
