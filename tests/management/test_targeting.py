"""Geo targeting on the real stack: countries and regions, validation against ISO 3166
(pycountry), tenancy, and the Redis record following every change."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.conftest import Tenant, make_tenant
from tests.management.links_support import (
    Client,
    assert_in_sync,
    auth,
    create,
    link_row_id,
)

pytestmark = pytest.mark.stack


async def test_countries(api: Client, tenant: Tenant, db: asyncpg.Pool,
                         redis_client: aioredis.Redis) -> None:
    link = await create(api, tenant)
    lid, h = link["idString"], auth(tenant)
    row_id = await link_row_id(db, lid)
    v0 = (await assert_in_sync(db, redis_client, row_id)).version
    one = await api.post(f"/link_country/{lid}", headers=h,
                         json={"country": "de", "originalURL": "https://example.de/"})
    assert one.status == 200, await one.text()
    assert (await one.json())["country"] == "DE"
    record = await assert_in_sync(db, redis_client, row_id)
    assert record.countries == {"DE": "https://example.de/"} and record.version > v0
    bulk = await api.post(f"/link_country/bulk/{lid}", headers=h, json=[
        {"country": "FR", "originalURL": "https://example.fr/"},
        {"country": "DE", "originalURL": "https://example.de/neu"}])
    assert bulk.status == 200
    assert (await assert_in_sync(db, redis_client, row_id)).countries == {
        "DE": "https://example.de/neu", "FR": "https://example.fr/"}
    listed = await (await api.get(f"/link_country/{lid}", headers=h)).json()
    assert [x["country"] for x in listed] == ["DE", "FR"]

    for bad in ({"country": "ZZ", "originalURL": "https://e.com/"},
                {"country": "US", "originalURL": "javascript:x"},
                {"country": "US", "originalURL": f"https://{tenant.hostname}/loop"}):
        answer = await api.post(f"/link_country/{lid}", headers=h, json=bad)
        assert answer.status == 400, bad
    bad_bulk = await api.post(f"/link_country/bulk/{lid}", headers=h, json=[
        {"country": "IT", "originalURL": "https://example.it/"},
        {"country": "??", "originalURL": "https://e.com/"}])
    assert bad_bulk.status == 400
    assert len(await (await api.get(f"/link_country/{lid}", headers=h)).json()) == 2

    gone = await api.delete(f"/link_country/{lid}/FR", headers=h)
    assert gone.status == 200
    assert (await assert_in_sync(db, redis_client, row_id)).countries == {
        "DE": "https://example.de/neu"}
    assert (await api.delete(f"/link_country/{lid}/FR", headers=h)).status == 404


async def test_regions(api: Client, tenant: Tenant, db: asyncpg.Pool,
                       redis_client: aioredis.Redis) -> None:
    link = await create(api, tenant)
    lid, h = link["idString"], auth(tenant)
    row_id = await link_row_id(db, lid)
    made = await api.post(f"/link_region/{lid}", headers=h, json={
        "country": "US", "region": "CA", "originalURL": "https://example.com/ca"})
    assert made.status == 200, await made.text()
    assert (await made.json())["region"] == "US-CA"
    await api.post(f"/link_region/bulk/{lid}", headers=h, json=[
        {"country": "US", "region": "US-NY", "originalURL": "https://example.com/ny"}])
    assert (await assert_in_sync(db, redis_client, row_id)).regions == {
        "US-CA": "https://example.com/ca", "US-NY": "https://example.com/ny"}
    wrong = await api.post(f"/link_region/{lid}", headers=h, json={
        "country": "US", "region": "DE-BY", "originalURL": "https://example.com/"})
    assert wrong.status == 400
    listed = await (await api.get(f"/link_region/{lid}", headers=h)).json()
    assert [x["region"] for x in listed] == ["US-CA", "US-NY"]
    gone = await api.delete(f"/link_region/{lid}/US/US-NY", headers=h)
    assert gone.status == 200
    assert (await assert_in_sync(db, redis_client, row_id)).regions == {
        "US-CA": "https://example.com/ca"}
    regions = await (await api.get("/link_region/list/DE", headers=h)).json()
    assert {"region": "DE-BY", "name": "Bayern"} in regions
    assert (await api.get("/link_region/list/ZZ", headers=h)).status == 400


async def test_targeting_tenancy(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                 redis_client: aioredis.Redis) -> None:
    link = await create(api, tenant)
    lid = link["idString"]
    stranger = auth(await make_tenant(db, redis_client))
    answers = [
        await api.get(f"/link_country/{lid}", headers=stranger),
        await api.post(f"/link_country/{lid}", headers=stranger,
                       json={"country": "US", "originalURL": "https://e.com/"}),
        await api.delete(f"/link_country/{lid}/US", headers=stranger),
        await api.get(f"/link_region/{lid}", headers=stranger),
        await api.post(f"/link_region/bulk/{lid}", headers=stranger, json=[
            {"country": "US", "region": "US-CA", "originalURL": "https://e.com/"}]),
    ]
    assert [a.status for a in answers] == [404] * len(answers)
    assert await (await api.get(f"/link_country/{lid}", headers=auth(tenant))).json() == []
