"""API keys on the real stack: create (secret once), list (prefix only), revoke; who may
manage keys; expired, revoked and unknown keys refused alike; the CLI keeps working."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.management.domains import repository as domain_repo
from shared import apikey_repository
from shared.apikeys import hash_key
from tests.conftest import Tenant, make_tenant, unique
from tests.helpers import run_command
from tests.management.links_support import auth

pytestmark = pytest.mark.stack

Client = TestClient[web.Request, web.Application]
REFUSED = "Unauthorized: missing, invalid, revoked or expired API key"






async def refused(api: Client, key: str) -> None:
    answer = await api.get("/api/domains", headers=auth(key))
    assert answer.status == 401
    assert await answer.json() == {
        "success": False, "error": REFUSED, "message": REFUSED, "code": "unauthorized",
        "statusCode": 401}


async def test_create_use_list_and_revoke(api: Client, tenant: Tenant, db: asyncpg.Pool
                                          ) -> None:
    expires = datetime.now(UTC) + timedelta(days=30)
    answer = await api.post("/api/keys", headers=auth(tenant.key), json={
        "kind": "private", "description": "ci", "expiresAt": expires.isoformat()})
    assert answer.status == 200, await answer.text()
    created = await answer.json()
    secret = created["key"]
    assert secret.startswith("sk_") and created["prefix"] == secret[:11]
    assert created["state"] == "active" and created["domainId"] is None
    assert created["description"] == "ci"

    answer = await api.get("/api/domains", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 200

    listed = await (await api.get("/api/keys", headers=auth(tenant.key))).json()
    assert [k["id"] for k in listed][-1] == created["id"] and len(listed) == 2
    text = str(listed)
    assert secret not in text and hash_key(secret).hex() not in text
    assert all("key" not in k and "secret_hash" not in k for k in listed)

    answer = await api.delete(f"/api/keys/{created['id']}", headers=auth(tenant.key))
    assert answer.status == 200
    assert await answer.json() == {"success": True, "id": created["id"]}
    await refused(api, secret)
    listed = await (await api.get("/api/keys", headers=auth(tenant.key))).json()
    assert listed[-1]["state"] == "revoked" and listed[-1]["revokedAt"]

    again = await api.delete(f"/api/keys/{created['id']}", headers=auth(tenant.key))
    assert again.status == 404
    async with db.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT secret_hash FROM api_keys WHERE id = $1", created["id"])
    assert bytes(stored) == hash_key(secret)


async def test_restricted_and_public_keys_created_through_the_api(
    api: Client, tenant: Tenant
) -> None:
    answer = await api.post("/api/keys", headers=auth(tenant.key),
                            json={"kind": "private", "domainId": tenant.domain_id})
    assert answer.status == 200
    restricted = (await answer.json())["key"]
    answer = await api.post("/api/keys", headers=auth(tenant.key), json={"kind": "public"})
    public = (await answer.json())["key"]
    assert public.startswith("pk_")

    for key in (restricted, public):
        for method, path, body in (("GET", "/api/keys", None),
                                   ("POST", "/api/keys", {"kind": "private"}),
                                   ("DELETE", "/api/keys/1", None)):
            answer = await api.request(method, path, headers=auth(key), json=body)
            assert answer.status == 403, (key[:3], method, path)
            assert (await answer.json())["code"] == "forbidden"
    # the public key may create links, and nothing else
    answer = await api.post("/links/public", headers=auth(public), json={
        "domain": tenant.hostname, "originalURL": "https://example.com/"})
    assert answer.status == 200, await answer.text()
    assert (await api.get("/api/domains", headers=auth(public))).status == 403


@pytest.mark.parametrize("body", [
    {},
    {"kind": "admin"},
    {"kind": "private", "expiresAt": "2001-01-01T00:00:00Z"},
    {"kind": "private", "expiresAt": "next week"},
    {"kind": "private", "description": "x" * 300},
    {"kind": "private", "domainId": "one"},
    {"kind": "private", "owner": "someone"},
])
async def test_bad_create_requests(api: Client, tenant: Tenant, body: dict[str, object]
                                   ) -> None:
    answer = await api.post("/api/keys", headers=auth(tenant.key), json=body)
    assert answer.status == 400, await answer.text()
    assert (await answer.json())["success"] is False


async def test_keys_of_other_teams_are_out_of_reach(
    api: Client, tenant: Tenant, db: asyncpg.Pool, redis_client: object
) -> None:
    other = await make_tenant(db, redis_client)  # type: ignore[arg-type]
    answer = await api.post("/api/keys", headers=auth(tenant.key),
                            json={"kind": "private", "domainId": other.domain_id})
    assert answer.status == 404
    async with db.acquire() as conn:
        other_key_id = await conn.fetchval(
            "SELECT id FROM api_keys WHERE team_id = $1", other.team_id)
    assert (await api.delete(f"/api/keys/{other_key_id}", headers=auth(tenant.key))).status == 404
    assert (await api.get("/api/domains", headers=auth(other.key))).status == 200
    listed = await (await api.get("/api/keys", headers=auth(tenant.key))).json()
    assert other_key_id not in {k["id"] for k in listed}


async def test_expired_revoked_and_unknown_keys_are_refused_alike(
    api: Client, tenant: Tenant, db: asyncpg.Pool
) -> None:
    async with db.acquire() as conn:
        expired, _ = await apikey_repository.create_key(
            conn, team_id=tenant.team_id, kind="private",
            expires_at=datetime.now(UTC) - timedelta(seconds=1))
        revoked, row = await apikey_repository.create_key(
            conn, team_id=tenant.team_id, kind="private")
        assert await apikey_repository.revoke_key(conn, tenant.team_id, row["id"])
    tampered = tenant.key[:-1] + ("A" if tenant.key[-1] != "A" else "B")
    for key in (expired, revoked, tampered, "sk_" + "0" * 32, "garbage", ""):
        await refused(api, key)
    answer = await api.get("/api/domains")
    assert answer.status == 401 and (await answer.json())["error"] == REFUSED


async def _cli(*args: str) -> tuple[int, str, str]:
    return await run_command(sys.executable, "-m", "services.cli", *args)


async def test_cli_keys_create_list_revoke(api: Client, tenant: Tenant, db: asyncpg.Pool
                                           ) -> None:
    hostname = f"{unique('d')}.test.linkhop.localhost"
    async with db.acquire() as conn:
        await domain_repo.create_domain(conn, team_id=tenant.team_id, hostname=hostname,
                                        unicode_hostname=hostname)
    code, out, _ = await _cli("keys", "create", "--team", str(tenant.team_id),
                              "--domain", hostname, "--description", "from the cli")
    assert code == 0
    secret = out.strip()
    listed = await (await api.get("/api/domains", headers=auth(secret))).json()
    assert [d["hostname"] for d in listed] == [hostname]

    code, out, _ = await _cli("keys", "list", "--team", str(tenant.team_id))
    assert code == 0 and secret[:11] in out and secret not in out and "from the cli" in out
    key_id = next(line.split("\t")[0] for line in out.splitlines() if secret[:11] in line)
    code, out, _ = await _cli("keys", "revoke", key_id, "--team", str(tenant.team_id))
    assert code == 0
    await refused(api, secret)
