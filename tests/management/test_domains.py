"""Domains API on the real stack: Short.io shapes, visibility by key, settings written
through to Redis with new versions, and re-keying when caseSensitive flips."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.management.domains import repository as domain_repo
from shared import apikey_repository
from shared.apikeys import KeyKind
from shared.linkrecord import DomainRecord, LinkRecord, domain_key, link_key
from tests.conftest import Tenant, make_tenant, unique
from tests.management.links_support import auth

pytestmark = pytest.mark.stack

Client = TestClient[web.Request, web.Application]

# Required fields of the SDK's Domain type (ListDomainsResponses / CreateDomainResponses).
SDK_DOMAIN_FIELDS = {
    "id", "hostname", "unicodeHostname", "state", "createdAt", "updatedAt", "hasFavicon",
    "hideReferer", "linkType", "cloaking", "hideVisitorIp", "enableAI", "httpsLevel",
    "httpsLinks", "clientStorage", "caseSensitive", "incrementCounter", "robots",
    "exportEnabled", "enableConversionTracking", "qrScanTracking",
}






async def new_key(db: asyncpg.Pool, team_id: int, *, kind: KeyKind = "private",
                  domain_id: int | None = None) -> str:
    async with db.acquire() as conn:
        key, _ = await apikey_repository.create_key(
            conn, team_id=team_id, kind=kind, domain_id=domain_id)
    return key


async def second_domain(db: asyncpg.Pool, tenant: Tenant) -> int:
    hostname = f"{unique('d')}.test.linkhop.localhost"
    async with db.acquire() as conn:
        row = await domain_repo.create_domain(
            conn, team_id=tenant.team_id, hostname=hostname, unicode_hostname=hostname)
    return int(row["id"])


async def domain_record(redis: aioredis.Redis, hostname: str) -> DomainRecord:
    raw = await redis.get(domain_key(hostname))
    assert raw is not None
    return DomainRecord.model_validate_json(raw)


async def link_record(redis: aioredis.Redis, hostname: str, key: str) -> LinkRecord | None:
    raw = await redis.get(link_key(hostname, key))
    return None if raw is None else LinkRecord.model_validate_json(raw)


async def create_link(api: Client, tenant: Tenant, path: str) -> dict[str, Any]:
    answer = await api.post("/links", headers=auth(tenant.key), json={
        "domain": tenant.hostname, "originalURL": f"https://example.com/{path}", "path": path})
    assert answer.status == 200, await answer.text()
    body: dict[str, Any] = await answer.json()
    return body


async def test_list_and_get_in_the_sdk_shape(api: Client, tenant: Tenant) -> None:
    for header in (tenant.key, f"Bearer {tenant.key}"):
        answer = await api.get("/api/domains", headers={"Authorization": header})
        assert answer.status == 200, await answer.text()
        domains = await answer.json()
        assert [d["hostname"] for d in domains] == [tenant.hostname]
    domain = domains[0]
    assert SDK_DOMAIN_FIELDS | {"isFavorite"} <= set(domain)
    assert domain["id"] == tenant.domain_id and domain["TeamId"] == tenant.team_id
    assert domain["linkType"] == "random" and domain["robots"] == "allow"
    assert domain["createdAt"].endswith("Z") and isinstance(domain["incrementCounter"], str)
    assert "webhookURL" not in domain  # optional string in the SDK: absent, never null

    answer = await api.get(f"/domains/{tenant.domain_id}", headers=auth(tenant.key))
    assert answer.status == 200
    detail = await answer.json()
    assert set(detail) >= SDK_DOMAIN_FIELDS and detail["ipExclusions"] == []


async def test_other_teams_and_missing_domains_are_not_found(
    api: Client, tenant: Tenant, db: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    other = await make_tenant(db, redis_client)
    for path in (f"/domains/{other.domain_id}", "/domains/999999999999", "/domains/abc"):
        answer = await api.get(path, headers=auth(tenant.key))
        assert answer.status == 404, path
        body = await answer.json()
        assert body["success"] is False and body["statusCode"] == 404
    answer = await api.post(f"/domains/settings/{other.domain_id}", headers=auth(tenant.key),
                            json={"robots": "disallow"})
    assert answer.status == 404
    async with db.acquire() as conn:
        row = await domain_repo.get_by_id(conn, other.domain_id)
    assert row is not None and row["robots"] == "allow"


async def test_create_domain_normalises_and_writes_through(
    api: Client, tenant: Tenant, redis_client: aioredis.Redis
) -> None:
    label = unique("bücher-")
    answer = await api.post("/domains", headers=auth(tenant.key), json={
        "hostname": f"  {label.upper()}.Test.LinkHop.localhost. ", "linkType": "secure",
        "hideReferer": True})
    assert answer.status == 200, await answer.text()
    domain = await answer.json()
    assert domain["hostname"].startswith("xn--") and domain["hostname"].endswith(
        ".test.linkhop.localhost")
    assert domain["unicodeHostname"] == f"{label}.test.linkhop.localhost"
    assert domain["linkType"] == "secure" and domain["hideReferer"] is True
    assert domain["TeamId"] == tenant.team_id
    record = await domain_record(redis_client, domain["hostname"])
    assert record.domain_id == domain["id"] and record.hide_referer is True

    again = await api.post("/domains", headers=auth(tenant.key),
                           json={"hostname": domain["unicodeHostname"]})
    assert again.status == 409
    assert (await again.json())["code"] == "conflict"
    for bad in ({"hostname": "not a host"}, {"hostname": "x.test/evil"}, {},
                {"hostname": "ok.test", "linkType": "weird"}):
        answer = await api.post("/domains", headers=auth(tenant.key), json=bad)
        assert answer.status == 400, bad
        assert (await answer.json())["success"] is False
    listed = await (await api.get("/api/domains", headers=auth(tenant.key))).json()
    assert {d["id"] for d in listed} == {tenant.domain_id, domain["id"]}


async def test_settings_change_writes_a_newer_record(
    api: Client, tenant: Tenant, redis_client: aioredis.Redis
) -> None:
    before = await domain_record(redis_client, tenant.hostname)
    answer = await api.post(f"/domains/settings/{tenant.domain_id}", headers=auth(tenant.key),
                            json={
        "robots": "noindex", "hideReferer": True, "hideVisitorIp": True,
        "redirectType": "307", "linkType": "eight-char", "httpsLevel": "hsts",
        "cloaking": True, "webhookURL": "https://hooks.example.com/x",
        "rootRedirect": "https://example.com/home",
        "notFoundRedirect": "https://example.com/404",
        "integrationGA": "ignored: a Short.io field linkhop does not use"})
    assert answer.status == 200, await answer.text()
    assert await answer.json() == {"success": True}
    after = await domain_record(redis_client, tenant.hostname)
    assert after.version > before.version
    assert (after.robots, after.hide_referer, after.hide_visitor_ip, after.redirect_type) == (
        "noindex", True, True, 307)
    assert after.root_redirect == "https://example.com/home"
    assert after.not_found_redirect == "https://example.com/404"
    detail = await (await api.get(f"/domains/{tenant.domain_id}",
                                  headers=auth(tenant.key))).json()
    assert detail["linkType"] == "eight-char" and detail["httpsLevel"] == "hsts"
    assert detail["webhookURL"] == "https://hooks.example.com/x"
    assert detail["redirectType"] == 307 and detail["cloaking"] is True

    # null or "" clears the optional URLs
    answer = await api.post(f"/domains/settings/{tenant.domain_id}", headers=auth(tenant.key),
                            json={"rootRedirect": None, "webhookURL": ""})
    assert answer.status == 200
    cleared = await domain_record(redis_client, tenant.hostname)
    assert cleared.root_redirect is None and cleared.version > after.version
    assert cleared.not_found_redirect == "https://example.com/404"


@pytest.mark.parametrize("body", [
    {"rootRedirect": "javascript:alert(1)"},
    {"notFoundRedirect": "/relative"},
    {"webhookURL": "ftp://example.com/"},
    {"redirectType": 303},
    {"robots": None},
    {"caseSensitive": "maybe"},
    {"linkType": "nine-char"},
    {"httpsLevel": "always"},
])
async def test_bad_settings_are_refused_and_change_nothing(
    api: Client, tenant: Tenant, redis_client: aioredis.Redis, body: dict[str, Any]
) -> None:
    before = await domain_record(redis_client, tenant.hostname)
    answer = await api.post(f"/domains/settings/{tenant.domain_id}", headers=auth(tenant.key),
                            json=body)
    assert answer.status == 400, await answer.text()
    error = await answer.json()
    assert error["success"] is False and error["error"]
    assert await domain_record(redis_client, tenant.hostname) == before


async def test_restricted_key_sees_and_changes_only_its_domain(
    api: Client, tenant: Tenant, db: asyncpg.Pool
) -> None:
    other_id = await second_domain(db, tenant)
    restricted = await new_key(db, tenant.team_id, domain_id=tenant.domain_id)
    listed = await (await api.get("/api/domains", headers=auth(restricted))).json()
    assert [d["id"] for d in listed] == [tenant.domain_id]
    assert (await api.get(f"/domains/{other_id}", headers=auth(restricted))).status == 404
    answer = await api.post(f"/domains/settings/{other_id}", headers=auth(restricted),
                            json={"robots": "disallow"})
    assert answer.status == 404
    answer = await api.post(f"/domains/settings/{tenant.domain_id}", headers=auth(restricted),
                            json={"robots": "disallow"})
    assert answer.status == 200
    answer = await api.post("/domains", headers=auth(restricted),
                            json={"hostname": f"{unique('d')}.test.linkhop.localhost"})
    assert answer.status == 403
    # the unrestricted key sees both
    listed = await (await api.get("/api/domains", headers=auth(tenant.key))).json()
    assert {d["id"] for d in listed} == {tenant.domain_id, other_id}


async def test_list_filters_of_the_sdk(api: Client, tenant: Tenant, db: asyncpg.Pool) -> None:
    """pattern, teamId and noTeamId (Short.io's ListDomainsData) filter; an unknown
    parameter is refused with the accepted ones named, never silently ignored."""
    other_id = await second_domain(db, tenant)

    async def listed(query: str) -> list[int]:
        answer = await api.get(f"/api/domains?{query}", headers=auth(tenant.key))
        assert answer.status == 200, await answer.text()
        return [d["id"] for d in await answer.json()]

    label = tenant.hostname.split(".")[0]
    assert await listed(f"pattern={label.upper()}") == [tenant.domain_id]
    assert await listed("pattern=linkhop.localhost") == sorted([tenant.domain_id, other_id])
    assert await listed("pattern=%25") == []  # a literal '%', not a wildcard
    assert await listed(f"teamId={tenant.team_id}") == sorted([tenant.domain_id, other_id])
    assert await listed("noTeamId=true") == []
    other_team = await api.get(f"/api/domains?teamId={tenant.team_id + 10**9}",
                               headers=auth(tenant.key))
    assert other_team.status == 403
    for query in ("limt=10", "=true", "pattern=a&extra=1"):
        answer = await api.get(f"/api/domains?{query}", headers=auth(tenant.key))
        assert answer.status == 400, query
        body = await answer.json()
        assert body["success"] is False and "accepts: limit, offset" in body["message"]


async def test_public_and_bad_keys_can_do_nothing_here(
    api: Client, tenant: Tenant, db: asyncpg.Pool
) -> None:
    public = await new_key(db, tenant.team_id, kind="public")
    calls = [("GET", "/api/domains", None), ("GET", f"/domains/{tenant.domain_id}", None),
             ("POST", "/domains", {"hostname": f"{unique('d')}.test.linkhop.localhost"}),
             ("POST", f"/domains/settings/{tenant.domain_id}", {"robots": "disallow"})]
    for method, path, body in calls:
        answer = await api.request(method, path, headers=auth(public), json=body)
        assert answer.status == 403, (method, path)
        assert (await answer.json())["code"] == "forbidden"
        for headers in ({}, auth("sk_" + "x" * 32), auth("nonsense")):
            answer = await api.request(method, path, headers=headers, json=body)
            assert answer.status == 401, (method, path, headers)
    async with db.acquire() as conn:
        row = await domain_repo.get_by_id(conn, tenant.domain_id)
    assert row is not None and row["robots"] == "allow"


async def test_case_sensitivity_rekeys_links_in_postgres_and_redis(
    api: Client, db: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    tenant = await make_tenant(db, redis_client, case_sensitive=True)
    paths = ["Hello", "world", "MiXed/Path"]
    links = {p: await create_link(api, tenant, p) for p in paths}
    for path in paths:
        assert await link_record(redis_client, tenant.hostname, path) is not None

    off = await api.post(f"/domains/settings/{tenant.domain_id}", headers=auth(tenant.key),
                         json={"caseSensitive": False})
    assert off.status == 200, await off.text()
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT path, path_key FROM links WHERE domain_id = $1", tenant.domain_id)
    keys = {r["path"]: r["path_key"] for r in rows}
    assert keys == {p: p.lower() for p in paths}
    for path in paths:
        new = await link_record(redis_client, tenant.hostname, path.lower())
        assert new is not None and not new.deleted and new.id_string == links[path]["idString"]
        if path != path.lower():
            old = await link_record(redis_client, tenant.hostname, path)
            assert old is not None and old.deleted and old.version == new.version
    assert (await domain_record(redis_client, tenant.hostname)).case_sensitive is False

    on = await api.post(f"/domains/settings/{tenant.domain_id}", headers=auth(tenant.key),
                        json={"caseSensitive": True})
    assert on.status == 200
    for path in paths:
        record = await link_record(redis_client, tenant.hostname, path)
        assert record is not None and not record.deleted
        if path != path.lower():
            stale = await link_record(redis_client, tenant.hostname, path.lower())
            assert stale is not None and stale.deleted
    assert (await domain_record(redis_client, tenant.hostname)).case_sensitive is True


async def test_turning_case_sensitivity_off_refuses_colliding_paths(
    api: Client, db: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    tenant = await make_tenant(db, redis_client, case_sensitive=True)
    for path in ("Promo", "promo", "other"):
        await create_link(api, tenant, path)
    before = await domain_record(redis_client, tenant.hostname)
    answer = await api.post(f"/domains/settings/{tenant.domain_id}", headers=auth(tenant.key),
                            json={"caseSensitive": False, "robots": "disallow"})
    assert answer.status == 409
    body = await answer.json()
    assert body["details"]["collisions"] == [["Promo", "promo"]]
    async with db.acquire() as conn:
        keys = sorted(r["path_key"] for r in await conn.fetch(
            "SELECT path_key FROM links WHERE domain_id = $1", tenant.domain_id))
        row = await domain_repo.get_by_id(conn, tenant.domain_id)
    assert keys == ["Promo", "other", "promo"]
    assert row is not None and row["case_sensitive"] and row["robots"] == "allow"
    assert await domain_record(redis_client, tenant.hostname) == before
