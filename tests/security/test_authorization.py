"""The authorization matrix: every management and statistics endpoint (enumerated from
the apps' registered endpoints) times every kind of credential. Only a private key of
the link's team, allowed on its domain, may succeed (a public key may only create), and
a denial looks the same whether the other team's link or domain exists or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.management.app import create_app as management_app
from services.management.domains import repository as domain_repo
from services.management.settings import Settings as ManagementSettings
from services.stats.app import create_app as stats_app
from services.stats.settings import Settings as StatsSettings
from shared import apikey_repository
from shared.openapi import ENDPOINTS, Endpoint
from tests.conftest import StackEnv, Tenant, make_tenant, serve, unique

pytestmark = pytest.mark.stack

Client = TestClient[web.Request, web.Application]
CREATE_ENDPOINTS = frozenset({"POST /links", "POST /links/public", "POST /links/bulk"})
DENIED = frozenset({401, 403, 404, 429})
# Endpoints acting on the caller's own team, naming no object of another team: a key of
# another team (or one restricted to another domain) may use them, but must see nothing
# of the victim's team in the answer.
TEAM_SCOPED = frozenset({"GET /api/domains", "POST /domains", "GET /api/keys", "POST /api/keys",
                         "GET /link_region/list/{country}"})
# Credentials that name a real key of a team: denied per object, not at the door.
KEYED = ("private of another team", "private restricted to another domain")
MISSING_LINK = "lnk_doesnotexist00"
MISSING_DOMAIN = "2000000000"


@dataclass
class World:
    victim: Tenant
    link_id_string: str
    link_path: str
    throwaway_key_id: int
    credentials: dict[str, str | None]  # name -> Authorization header (None: no header)


@pytest.fixture
async def apps(migrated: StackEnv) -> AsyncIterator[tuple[Client, Client]]:
    management = await serve(management_app(ManagementSettings()))
    stats = await serve(stats_app(StatsSettings(run_consumer=False)))
    try:
        yield management, stats
    finally:
        await management.close()
        await stats.close()


@pytest.fixture
async def world(db: asyncpg.Pool, redis_client: aioredis.Redis, tenant: Tenant,
                apps: tuple[Client, Client]) -> World:
    management, _ = apps
    other_team = await make_tenant(db, redis_client)
    answer = await management.post(
        "/links", json={"domain": tenant.hostname, "originalURL": "https://example.com/authz"},
        headers={"Authorization": tenant.key})
    assert answer.status == 200, await answer.text()
    link = await answer.json()
    async with db.acquire() as conn:
        other_domain = await domain_repo.create_domain(
            conn, team_id=tenant.team_id, hostname=f"{unique('o')}.test.linkhop.localhost",
            unicode_hostname="o.test")
        team = tenant.team_id
        revoked, revoked_row = await apikey_repository.create_key(conn, team_id=team,
                                                                  kind="private")
        await apikey_repository.revoke_key(conn, team, revoked_row["id"])
        expired, _ = await apikey_repository.create_key(
            conn, team_id=team, kind="private", expires_at=datetime.now(UTC) - timedelta(hours=1))
        public, _ = await apikey_repository.create_key(conn, team_id=team, kind="public")
        restricted, _ = await apikey_repository.create_key(
            conn, team_id=team, kind="private", domain_id=other_domain["id"])
        _, throwaway = await apikey_repository.create_key(conn, team_id=team, kind="private")
    return World(
        victim=tenant,
        link_id_string=link["idString"],
        link_path=link["path"],
        throwaway_key_id=throwaway["id"],
        credentials={
            "no key": None,
            "malformed": "Bearer not-a-key",
            "malformed prefix": tenant.key[:-4] + "!!!!",
            "revoked": revoked,
            "expired": expired,
            "public": public,
            "private restricted to another domain": restricted,
            "private of another team": other_team.key,
            "private allowed": tenant.key,
        },
    )


class _Params(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "x"  # a path parameter this test does not know yet


def _url(endpoint: Endpoint, world: World, *, missing: bool = False) -> str:
    link = MISSING_LINK if missing else world.link_id_string
    domain = MISSING_DOMAIN if missing else str(world.victim.domain_id)
    values = _Params(
        linkId=link, link_id=link, linkIdString=link, domainId=domain, folderId="fld_none",
        keyId=str(world.throwaway_key_id), country="US", region="CA",
    )
    queries = {
        "GET /links/expand": f"domain={world.victim.hostname}&path={world.link_path}",
        "GET /links/multiple-by-url": f"domain_id={domain}&originalURL=https://example.com/authz",
        "GET /api/links": f"domain_id={domain}",
        "GET /statistics/domain/{domainId}/link_clicks": f"ids={link}",
    }
    query = queries.get(endpoint.name)
    url = endpoint.template.format_map(values)
    return f"{url}?{query}" if query else url


def _body(endpoint: Endpoint, world: World) -> Any:
    if endpoint.request is None:
        return None
    link, domain = world.link_id_string, world.victim.domain_id
    rule = {"country": "US", "originalURL": "https://example.com/us"}
    region_rule = {"country": "US", "region": "CA", "originalURL": "https://example.com/ca"}
    bodies: dict[str, Any] = {
        "POST /link_country/bulk/{linkId}": [rule],
        "POST /link_country/{linkId}": rule,
        "POST /link_region/bulk/{linkId}": [region_rule],
        "POST /link_region/{linkId}": region_rule,
        "POST /links/qr/bulk": {"linkIds": [link], "domainId": domain},
        "POST /statistics/domain/{domainId}/link_clicks": {"ids": [link]},
        "POST /statistics/domain/{domainId}/top": {"column": "country"},
        "POST /statistics/domain/{domainId}/top_by_interval": {"column": "country"},
        "POST /links": {"domain": world.victim.hostname, "originalURL": "https://example.com/m"},
        "POST /links/public": {"domain": world.victim.hostname,
                               "originalURL": "https://example.com/p"},
        "POST /links/bulk": {"domain": world.victim.hostname,
                             "links": [{"originalURL": "https://example.com/b"}]},
        "POST /links/archive": {"link_id": link},
        "POST /links/unarchive": {"link_id": link},
        "DELETE /links/delete_bulk": {"link_ids": [link], "domain_id": domain},
        "POST /links/archive_bulk": {"link_ids": [link], "domain_id": domain},
        "POST /links/unarchive_bulk": {"link_ids": [link], "domain_id": domain},
        "POST /tags/bulk": {"link_ids": [link], "domain_id": domain, "tag": "t"},
        "POST /links/folders": {"domainId": domain, "name": "f"},
        "POST /links/{linkId}": {"title": "changed"},
        "POST /domains": {"hostname": f"{unique('n')}.test.linkhop.localhost"},
        "POST /api/keys": {"kind": "private"},
    }
    return bodies.get(endpoint.name, {})


def _order(endpoint: Endpoint) -> tuple[int, int]:
    # Deletions last (the allowed key really deletes), the bulk deletion very last.
    return (endpoint.method == "DELETE", endpoint.method == "DELETE" and "{" not in endpoint.path)


async def _call(client: Client, endpoint: Endpoint, url: str, body: Any,
                auth: str | None) -> tuple[int, str]:
    headers = {} if auth is None else {"Authorization": auth}
    answer = await client.request(endpoint.method, url, json=body, headers=headers)
    raw = await answer.read()
    return answer.status, raw.decode(errors="replace")


async def test_authorization_matrix(apps: tuple[Client, Client], world: World) -> None:
    failures: list[str] = []
    allowed_outcomes: dict[str, int] = {}
    endpoints = [(client, e) for client in apps for e in client.app[ENDPOINTS] if e.auth]
    assert len(endpoints) >= 20  # both apps really enumerated
    for client, endpoint in sorted(endpoints, key=lambda ce: _order(ce[1])):
        body = _body(endpoint, world)
        for name, auth in world.credentials.items():
            status, text = await _call(client, endpoint, _url(endpoint, world), body, auth)
            where = f"{endpoint.name} as {name}: {status} {text[:160]}"
            if status >= 500:
                failures.append(f"5xx: {where}")
            elif name == "private allowed":
                allowed_outcomes[endpoint.name] = status
                if status in (401, 403):
                    failures.append(f"allowed key refused: {where}")
            elif name == "public" and endpoint.name in CREATE_ENDPOINTS:
                continue
            elif name in KEYED and endpoint.name in TEAM_SCOPED:
                leaked = [secret for secret in (world.victim.hostname, world.link_id_string,
                                                world.victim.key[:10]) if secret in text]
                if leaked and not (name == KEYED[1] and leaked == [world.victim.key[:10]]):
                    failures.append(f"another team's data {leaked} in: {where}")
                if name == KEYED[1] and endpoint.method == "POST" and status < 300 and (
                    '"domainId": null' in text or endpoint.path == "/domains"
                ):
                    failures.append(f"a domain-restricted key escalated: {where}")
                continue
            elif status not in DENIED:
                failures.append(f"not denied: {where}")
            if name in ("private of another team", "private restricted to another domain") and (
                "{" in endpoint.path or "?" in _url(endpoint, world)
            ) and "keyId" not in endpoint.path:
                missing = await _call(client, endpoint, _url(endpoint, world, missing=True),
                                      body, auth)
                if missing != (status, text):
                    failures.append(f"denial differs for an existing and a missing object: "
                                    f"{where} vs {missing[0]} {missing[1][:160]}")
    print(f"allowed key outcomes: {allowed_outcomes}")
    assert not failures, "\n".join(failures)
    assert sum(200 <= s < 300 for s in allowed_outcomes.values()) >= len(allowed_outcomes) // 2
