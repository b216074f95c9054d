"""Bulk create on the real stack: 1000 links with some bad items, per-item results in
input order, and every created link's Redis record equal to what Postgres compiles."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from shared.linkrecord import LinkRecord, link_key
from shared.record_repository import fetch_link_records_by_ids
from tests.conftest import Tenant, make_tenant
from tests.management.links_support import Client, auth, count_links, create

pytestmark = pytest.mark.stack

BAD = {7: {"originalURL": "javascript:alert(1)"}, 123: {"originalURL": "https://e.com/",
                                                        "path": "robots.txt"},
       500: "not an object", 999: {"title": "no url"}}


async def test_bulk_1000_with_bad_items(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                        redis_client: aioredis.Redis) -> None:
    items: list[object] = [{"originalURL": f"https://example.com/item/{i}", "title": f"#{i}"}
                           for i in range(1000)]
    items[3] = {"originalURL": "https://example.com/item/3", "path": "chosen"}
    for index, bad in BAD.items():
        items[index] = bad
    answer = await api.post("/links/bulk", headers=auth(tenant),
                            json={"domain": tenant.hostname, "links": items})
    assert answer.status == 200, await answer.text()
    results = await answer.json()
    assert len(results) == 1000
    for index, result in enumerate(results):
        if index in BAD:
            assert result["success"] is False and result["statusCode"] == 400, result
        else:
            assert result["success"] is True
            assert result["originalURL"] == f"https://example.com/item/{index}"
    assert results[3]["path"] == "chosen"
    assert await count_links(db, tenant.domain_id) == 1000 - len(BAD)

    async with db.acquire() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM links WHERE domain_id = $1",
                                                 tenant.domain_id)]
        compiled = await fetch_link_records_by_ids(conn, ids)
    raw = await redis_client.mget([link_key(h, k) for h, k, _ in compiled])
    assert [LinkRecord.model_validate_json(r) if r else None for r in raw] == [
        record for _, _, record in compiled]


async def test_bulk_duplicates_conflicts_and_limits(api: Client, tenant: Tenant,
                                                    db: asyncpg.Pool) -> None:
    existing = await create(api, tenant, originalURL="https://example.com/old", path="p1")
    answer = await api.post("/links/bulk", headers=auth(tenant), json={
        "domain": tenant.hostname, "links": [
            {"originalURL": "https://example.com/old"},          # reuses the existing link
            {"originalURL": "https://example.com/new"},
            {"originalURL": "https://example.com/new"},          # repeats item 1
            {"originalURL": "https://example.com/x", "path": "P1"},  # taken (case-folded)
            {"originalURL": "https://example.com/y", "path": "twice"},
            {"originalURL": "https://example.com/z", "path": "twice"},
            {"originalURL": "https://example.com/new", "allowDuplicates": True},
        ]})
    results = await answer.json()
    assert results[0]["idString"] == existing["idString"] and results[0]["duplicate"] is True
    assert "duplicate" not in results[1]
    assert results[2]["idString"] == results[1]["idString"] and results[2]["duplicate"]
    assert results[3]["statusCode"] == 409 and results[5]["statusCode"] == 409
    assert results[4]["path"] == "twice"
    assert results[6]["idString"] != results[1]["idString"]
    assert await count_links(db, tenant.domain_id) == 4

    too_many = await api.post("/links/bulk", headers=auth(tenant), json={
        "domain": tenant.hostname,
        "links": [{"originalURL": "https://example.com/"}] * 1001})
    assert too_many.status == 413
    empty = await api.post("/links/bulk", headers=auth(tenant),
                           json={"domain": tenant.hostname, "links": []})
    assert empty.status == 400
    assert await count_links(db, tenant.domain_id) == 4


async def test_link_types_of_the_domain(api: Client, db: asyncpg.Pool,
                                        redis_client: aioredis.Redis) -> None:
    sensitive = await make_tenant(db, redis_client, case_sensitive=True)
    for link_type, length in (("secure", 12), ("four-char", 4), ("ten-char", 10)):
        await db.execute("UPDATE domains SET link_type = $2 WHERE id = $1",
                         sensitive.domain_id, link_type)
        link = await create(api, sensitive, originalURL=f"https://example.com/{link_type}")
        assert len(link["path"]) == length, link_type
    counter = await make_tenant(db, redis_client)
    await db.execute("UPDATE domains SET link_type = 'increment', increment_counter = 34"
                     " WHERE id = $1", counter.domain_id)
    answer = await api.post("/links/bulk", headers=auth(counter), json={
        "domain": counter.hostname, "links": [
            {"originalURL": f"https://example.com/{i}"} for i in range(3)]})
    assert [r["path"] for r in await answer.json()] == ["z", "10", "11"]
    await create(api, counter, originalURL="https://example.com/taken", path="12")
    after = await create(api, counter, originalURL="https://example.com/next")
    assert after["path"] == "13"  # the taken "12" was skipped
