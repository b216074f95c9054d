"""Links API on the real stack: each endpoint, its failure answers (which change
nothing), tenancy, and Redis holding exactly what Postgres compiles to."""

from __future__ import annotations

import asyncio
import io

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.management.domains import repository as domain_repo
from shared.passwords import verify_password
from tests.conftest import Tenant, make_tenant, unique
from tests.management.links_support import (
    Client,
    assert_in_sync,
    auth,
    count_links,
    create,
    link_row_id,
    new_key,
    stored,
)

pytestmark = pytest.mark.stack


async def test_create_with_all_fields_and_sync(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                               redis_client: aioredis.Redis) -> None:
    link = await create(
        api, tenant, originalURL="https://Bücher.example/a?q=1", path="promo", title="Promo",
        tags=["a", "b", "a"], expiresAt=4102444800000, expiredURL="https://example.com/over",
        password="s3cret", redirectType=307, clicksLimit=10,
        androidURL="https://play.example/app", iphoneURL="https://apps.example/app",
        splitURL="https://example.com/b", splitPercent=30, utmSource="news",
        utmMedium="email", utmCampaign="spring", utmTerm="t", utmContent="c", skipQS=True,
        cloaking=True, ttl="2099-01-01T00:00:00Z",
    )
    assert link["originalURL"] == "https://xn--bcher-kva.example/a?q=1"
    assert link["shortURL"] == f"https://{tenant.hostname}/promo"
    assert link["redirectType"] == "307" and link["hasPassword"] is True
    assert link["tags"] == ["a", "b"] and link["expiresAt"] == 4102444800000
    assert link["DomainId"] == tenant.domain_id and "password" not in link
    assert link["idString"].startswith("lnk_") and link["source"] == "api"
    record = await assert_in_sync(db, redis_client, await link_row_id(db, link["idString"]))
    assert record.utm == {"utm_source": "news", "utm_medium": "email",
                          "utm_campaign": "spring", "utm_term": "t", "utm_content": "c"}
    assert record.password_hash is not None and "s3cret" not in record.password_hash
    assert verify_password(record.password_hash, "s3cret")
    assert not verify_password(record.password_hash, "wrong")
    assert record.expires_at == 4102444800.0 and record.split_percent == 30

    got = await api.get(f"/links/{link['idString']}", headers=auth(tenant))
    assert got.status == 200 and (await got.json())["path"] == "promo"
    expanded = await api.get("/links/expand", params={"domain": tenant.hostname,
                                                      "path": "PROMO"}, headers=auth(tenant))
    assert expanded.status == 200 and (await expanded.json())["idString"] == link["idString"]


async def test_generated_path_and_duplicates(api: Client, tenant: Tenant,
                                             db: asyncpg.Pool) -> None:
    first = await create(api, tenant, originalURL="https://example.com/dup")
    assert len(first["path"]) == 8 and first["path"] == first["path"].lower()
    again = await create(api, tenant, originalURL="https://example.com/dup")
    assert again["duplicate"] is True and again["idString"] == first["idString"]
    allowed = await create(api, tenant, originalURL="https://example.com/dup",
                           allowDuplicates=True)
    assert allowed["idString"] != first["idString"] and "duplicate" not in allowed
    by_url = await api.get("/links/multiple-by-url", headers=auth(tenant), params={
        "domain_id": str(tenant.domain_id), "originalURL": "https://example.com/dup"})
    assert by_url.status == 200
    assert {x["idString"] for x in (await by_url.json())["links"]} == {
        first["idString"], allowed["idString"]}
    assert await count_links(db, tenant.domain_id) == 2


@pytest.mark.parametrize("body, message", [
    ({"originalURL": "javascript:alert(1)"}, "http"),
    ({"originalURL": "//evil.example/x"}, "http"),
    ({"originalURL": "https://example.com/%0d%0aSet-Cookie:x"}, "control"),
    ({"originalURL": "https://example.com/\\evil"}, "backslash"),
    ({"originalURL": "https://example.com/" + "a" * 5000}, "longer"),
    ({"originalURL": "https://example.com/", "path": "health"}, "reserved"),
    ({"originalURL": "https://example.com/", "path": "a b"}, "path"),
    ({"originalURL": "https://example.com/", "redirectType": 303}, "redirectType"),
    ({"originalURL": "https://example.com/", "splitPercent": 101}, "splitPercent"),
    ({"originalURL": "https://example.com/", "expiresAt": "tomorrow"}, "expiresAt"),
    ({"originalURL": "https://example.com/", "iphoneURL": "data:text/html,x"}, "iphoneURL"),
])
async def test_create_refuses_bad_input(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                        body: dict[str, object], message: str) -> None:
    answer = await api.post("/links", json={"domain": tenant.hostname} | body,
                            headers=auth(tenant))
    assert answer.status == 400, await answer.text()
    error = await answer.json()
    assert error["success"] is False and error["statusCode"] == 400
    assert message.lower() in error["error"].lower()
    assert await count_links(db, tenant.domain_id) == 0


async def test_concurrent_identical_creates_make_one_link(api: Client, tenant: Tenant,
                                                          db: asyncpg.Pool) -> None:
    """Six single creates and two bulk creates (over the per-destination lock limit, so
    they lock the domain) of one destination, all at once: one link, the rest answered
    as its duplicates."""
    url = "https://example.com/raced"
    bulk = [{"originalURL": url}] + [{"originalURL": f"https://example.com/r{i}"}
                                     for i in range(40)]

    async def single() -> str:
        return str((await create(api, tenant, originalURL=url))["idString"])

    async def bulk_create() -> str:
        answer = await api.post("/links/bulk", headers=auth(tenant),
                                json={"domain": tenant.hostname, "links": bulk})
        assert answer.status == 200, await answer.text()
        return str((await answer.json())[0]["idString"])

    ids = await asyncio.gather(*(single() for _ in range(6)), bulk_create(), bulk_create())
    assert len(set(ids)) == 1, ids
    assert await count_links(db, tenant.domain_id) == 41


async def test_loops_conflicts_and_limits(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                          redis_client: aioredis.Redis) -> None:
    other = await make_tenant(db, redis_client)
    loop = await api.post("/links", headers=auth(tenant), json={
        "domain": tenant.hostname, "originalURL": f"https://{other.hostname.upper()}/x"})
    assert loop.status == 400 and "loop" in (await loop.json())["error"]
    await create(api, tenant, path="taken")
    taken = await api.post("/links", headers=auth(tenant), json={
        "domain": tenant.hostname, "originalURL": "https://example.com/2", "path": "TAKEN"})
    assert taken.status == 409
    assert (await taken.json())["error"] == "Link with this path already exists"
    big = await api.post("/links", headers=auth(tenant) | {"Content-Type": "application/json"},
                         data=io.BytesIO(b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}'))
    assert big.status == 413
    missing = await api.post("/links", headers=auth(tenant), json={
        "domain": "nope.example", "originalURL": "https://example.com/"})
    assert missing.status == 404
    assert await count_links(db, tenant.domain_id) == 1


async def test_update_moves_path_and_tombstones(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                                redis_client: aioredis.Redis) -> None:
    link = await create(api, tenant, path="old", title="t", password="pw")
    link_id = await link_row_id(db, link["idString"])
    before = await assert_in_sync(db, redis_client, link_id)
    answer = await api.post(f"/links/{link['idString']}", headers=auth(tenant), json={
        "path": "New", "originalURL": "https://example.com/changed", "title": None,
        "password": None, "redirectType": "301"})
    assert answer.status == 200, await answer.text()
    updated = await answer.json()
    assert updated["path"] == "New" and "title" not in updated
    assert updated["hasPassword"] is False and updated["redirectType"] == "301"
    after = await assert_in_sync(db, redis_client, link_id)
    assert after.version > before.version and after.url == "https://example.com/changed"
    tomb = await stored(redis_client, tenant.hostname, "old")
    assert tomb is not None and tomb.deleted and tomb.version > after.version
    ttl = await redis_client.ttl(f"lh:l:{tenant.hostname}:old")
    assert ttl > 0

    bad = await api.post(f"/links/{link['idString']}", headers=auth(tenant),
                         json={"originalURL": "ftp://example.com/"})
    assert bad.status == 400
    cleared = await api.post(f"/links/{link['idString']}", headers=auth(tenant),
                             json={"originalURL": None})
    assert cleared.status == 400
    assert await assert_in_sync(db, redis_client, link_id) == after  # nothing changed


async def test_delete_archive_duplicate_tags(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                             redis_client: aioredis.Redis) -> None:
    link = await create(api, tenant, path="orig", tags=["x"])
    link_id = await link_row_id(db, link["idString"])
    await db.execute("INSERT INTO link_countries VALUES ($1, 'DE', 'https://example.de/')",
                     link_id)
    archived = await api.post("/links/archive", headers=auth(tenant),
                              json={"link_id": link["idString"]})
    assert archived.status == 200 and (await archived.json()) == {"success": True}
    assert (await assert_in_sync(db, redis_client, link_id)).archived is True
    await api.post("/links/unarchive", headers=auth(tenant), json={"link_id": link["idString"]})
    assert (await assert_in_sync(db, redis_client, link_id)).archived is False

    dup = await api.post(f"/links/duplicate/{link['idString']}", headers=auth(tenant),
                         json={"path": "copy"})
    assert dup.status == 200, await dup.text()
    copy = await dup.json()
    assert copy["path"] == "copy" and copy["duplicatedFrom"] == link["idString"]
    copy_record = await assert_in_sync(db, redis_client, await link_row_id(db, copy["idString"]))
    assert copy_record.countries == {"DE": "https://example.de/"}
    dup_taken = await api.post(f"/links/duplicate/{link['idString']}", headers=auth(tenant),
                               json={"path": "copy"})
    assert dup_taken.status == 409

    tagged = await api.post("/tags/bulk", headers=auth(tenant), json={
        "tag": "y", "link_ids": [link["idString"], copy["idString"]]})
    assert tagged.status == 200
    got = await (await api.get(f"/links/{link['idString']}", headers=auth(tenant))).json()
    assert got["tags"] == ["x", "y"]

    bulk_archive = await api.post("/links/archive_bulk", headers=auth(tenant), json={
        "link_ids": [link["idString"], copy["idString"]]})
    assert bulk_archive.status == 200
    assert (await assert_in_sync(db, redis_client, link_id)).archived is True
    await api.post("/links/unarchive_bulk", headers=auth(tenant), json={
        "link_ids": [link["idString"], copy["idString"]]})
    assert (await assert_in_sync(db, redis_client, link_id)).archived is False

    deleted = await api.delete(f"/links/{link['idString']}", headers=auth(tenant))
    assert (await deleted.json()) == {"success": True, "idString": link["idString"]}
    tomb = await stored(redis_client, tenant.hostname, "orig")
    assert tomb is not None and tomb.deleted
    assert (await api.get(f"/links/{link['idString']}", headers=auth(tenant))).status == 404
    bulk_gone = await api.delete("/links/delete_bulk", headers=auth(tenant),
                                 json={"link_ids": [copy["idString"]]})
    assert bulk_gone.status == 200
    gone = await stored(redis_client, tenant.hostname, "copy")
    assert gone is not None and gone.deleted
    assert await count_links(db, tenant.domain_id) == 0


async def test_tenancy_is_enforced_everywhere(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                              redis_client: aioredis.Redis) -> None:
    link = await create(api, tenant, path="mine")
    stranger = await make_tenant(db, redis_client)
    async with db.acquire() as conn:
        second = await domain_repo.create_domain(
            conn, team_id=tenant.team_id, hostname=f"{unique('d')}.test.linkhop.localhost",
            unicode_hostname="x")
    restricted = await new_key(db, tenant, domain_id=second["id"])
    lid = link["idString"]
    for key in (stranger.key, restricted):
        h = auth(key)
        answers = [
            await api.get(f"/links/{lid}", headers=h),
            await api.post(f"/links/{lid}", headers=h, json={"title": "x"}),
            await api.delete(f"/links/{lid}", headers=h),
            await api.post("/links/archive", headers=h, json={"link_id": lid}),
            await api.post(f"/links/duplicate/{lid}", headers=h),
            await api.post("/tags/bulk", headers=h, json={"tag": "t", "link_ids": [lid]}),
            await api.delete("/links/delete_bulk", headers=h, json={"link_ids": [lid]}),
            await api.get("/links/expand", headers=h,
                          params={"domain": tenant.hostname, "path": "mine"}),
            await api.get("/api/links", headers=h, params={"domain_id": tenant.domain_id}),
            await api.get(f"/links/folders/{tenant.domain_id}", headers=h),
            await api.post("/links/folders", headers=h,
                           json={"domainId": tenant.domain_id, "name": "x"}),
            await api.get("/links/multiple-by-url", headers=h, params={
                "domain_id": tenant.domain_id, "originalURL": "https://example.com/x"}),
            await api.post("/links/qr/bulk", headers=h, json={
                "linkIds": [lid], "type": "png", "useDomainSettings": False}),
            await api.post("/links", headers=h, json={"domain": tenant.hostname,
                                                      "originalURL": "https://e.com/"}),
            await api.post("/links/bulk", headers=h, json={
                "domain": tenant.hostname, "links": [{"originalURL": "https://e.com/"}]}),
        ]
        assert [a.status for a in answers] == [404] * len(answers)
    public = await new_key(db, tenant, kind="public")
    refused = await api.get(f"/links/{lid}", headers=auth(public))
    assert refused.status == 403
    made = await api.post("/links/public", headers=auth(public), json={
        "domain": tenant.hostname, "originalURL": "https://example.com/pub"})
    assert made.status == 200 and (await made.json())["source"] == "public"
    unauth = await api.get(f"/links/{lid}")
    assert unauth.status == 401
    still = await api.get(f"/links/{lid}", headers=auth(tenant))
    assert still.status == 200


async def test_list_pages_with_keyset_token(api: Client, tenant: Tenant) -> None:
    made = [await create(api, tenant, originalURL=f"https://example.com/{i}") for i in range(5)]
    seen: list[str] = []
    token = None
    for _ in range(4):
        params: dict[str, str | int] = {"domain_id": tenant.domain_id, "limit": 2,
                                        "dateSortOrder": "asc"}
        if token:
            params["pageToken"] = token
        page = await (await api.get("/api/links", headers=auth(tenant), params=params)).json()
        assert page["count"] == 5
        seen += [x["idString"] for x in page["links"]]
        token = page.get("nextPageToken")
        if token is None:
            break
    assert seen == [m["idString"] for m in made]
    desc = await (await api.get("/api/links", headers=auth(tenant), params={
        "domain_id": tenant.domain_id})).json()
    assert [x["idString"] for x in desc["links"]] == [m["idString"] for m in reversed(made)]
    bads: list[dict[str, str | int]] = [{"limit": 151}, {"pageToken": "garbage!"},
                                        {"beforeDate": "never"}, {"dateSortOrder": "sideways"}]
    base: dict[str, str | int] = {"domain_id": tenant.domain_id}
    for bad in bads:
        answer = await api.get("/api/links", headers=auth(tenant), params=base | bad)
        assert answer.status == 400, bad


async def test_list_links_exact_filters(api: Client, tenant: Tenant) -> None:
    """The SDK's idString and createdAt query parameters narrow the listing exactly."""
    first = await create(api, tenant, originalURL="https://example.com/one")
    await create(api, tenant, originalURL="https://example.com/two")
    base: dict[str, str | int] = {"domain_id": tenant.domain_id}
    by_id = await (await api.get("/api/links", headers=auth(tenant),
                                 params=base | {"idString": first["idString"]})).json()
    assert [x["idString"] for x in by_id["links"]] == [first["idString"]]
    assert by_id["count"] == 1
    by_time = await (await api.get("/api/links", headers=auth(tenant),
                                   params=base | {"createdAt": first["createdAt"]})).json()
    assert first["idString"] in [x["idString"] for x in by_time["links"]]
    assert all(x["createdAt"] == first["createdAt"] for x in by_time["links"])
    nothing = await (await api.get("/api/links", headers=auth(tenant),
                                   params=base | {"idString": "lnk_none"})).json()
    assert nothing["count"] == 0 and nothing["links"] == []
    bad = await api.get("/api/links", headers=auth(tenant), params=base | {"createdAt": "x"})
    assert bad.status == 400 and "createdAt" in (await bad.json())["message"]


async def test_folders(api: Client, tenant: Tenant) -> None:
    made = await api.post("/links/folders", headers=auth(tenant),
                          json={"domainId": tenant.domain_id, "name": "Campaigns"})
    assert made.status == 200
    folder = await made.json()
    listed = await (await api.get(f"/links/folders/{tenant.domain_id}",
                                  headers=auth(tenant))).json()
    assert listed == {"linkFolders": [folder]}
    one = await api.get(f"/links/folders/{tenant.domain_id}/{folder['id']}",
                        headers=auth(tenant))
    assert (await one.json()) == folder
    link = await create(api, tenant, folderId=folder["id"])
    assert link["FolderId"] == folder["id"]
    await create(api, tenant, originalURL="https://example.com/other")
    in_folder = await (await api.get("/api/links", headers=auth(tenant), params={
        "domain_id": tenant.domain_id, "folderId": folder["id"]})).json()
    assert [x["idString"] for x in in_folder["links"]] == [link["idString"]]
    bad = await api.post("/links", headers=auth(tenant), json={
        "domain": tenant.hostname, "originalURL": "https://e.com/", "folderId": "fld_nope"})
    assert bad.status == 404
    missing = await api.get(f"/links/folders/{tenant.domain_id}/fld_nope", headers=auth(tenant))
    assert missing.status == 404
