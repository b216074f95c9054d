"""Abuse at the door: scanning random slugs, guessing link passwords, and bodies,
headers and URLs over the limits."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.management.app import create_app as management_app
from services.management.settings import Settings as ManagementSettings
from services.redirect.app import create_app as redirect_app
from services.redirect.settings import Settings as RedirectSettings
from services.stats.app import create_app as stats_app
from services.stats.settings import Settings as StatsSettings
from tests.conftest import StackEnv, Tenant, serve

pytestmark = pytest.mark.stack

Client = TestClient[web.Request, web.Application]
SCAN = 150


async def _metric(client: Client, name: str) -> float:
    text = await (await client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _scan(client: Client, host: str, slugs: list[str]) -> dict[int, int]:
    statuses: dict[int, int] = {}
    for slug in slugs:
        answer = await client.get(f"/{slug}", headers={"Host": host}, allow_redirects=False)
        await answer.read()
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    return statuses


async def test_scanning_random_slugs_has_bounded_database_cost(
    migrated: StackEnv, tenant: Tenant, topic: str
) -> None:
    # A small fallback budget makes the bound visible with few requests.
    settings = RedirectSettings(clicks_topic=topic, db_fallback_rate=5.0, db_fallback_burst=20)
    redirect = await serve(redirect_app(settings))
    try:
        slugs = [uuid.uuid4().hex[:10] for _ in range(SCAN)]
        before = await _metric(redirect, "linkhop_db_lookups_total")
        statuses = await _scan(redirect, tenant.hostname, slugs)
        first = await _metric(redirect, "linkhop_db_lookups_total") - before
        again = await _scan(redirect, tenant.hostname, slugs)  # remembered misses
        second = await _metric(redirect, "linkhop_db_lookups_total") - before - first
        print(f"scan of {SCAN} random slugs: {statuses}, Postgres queries {first:g}; "
              f"the same slugs again: {again}, Postgres queries {second:g}")
        assert set(statuses) <= {404, 429} and set(again) <= {404, 429}
        assert first <= 20 + 5 * 10  # the budget: burst + rate x (generous) duration
        assert second == 0
    finally:
        await redirect.close()


async def test_scanning_is_limited_per_client_and_costs_no_query_per_request(
    migrated: StackEnv, tenant: Tenant, topic: str
) -> None:
    redirect = await serve(redirect_app(RedirectSettings(clicks_topic=topic)))
    try:
        slugs = [uuid.uuid4().hex[:10] for _ in range(SCAN)]
        before = await _metric(redirect, "linkhop_db_lookups_total")
        statuses = await _scan(redirect, tenant.hostname, slugs)
        queries = await _metric(redirect, "linkhop_db_lookups_total") - before
    finally:
        await redirect.close()
    print(f"default settings, {SCAN} random slugs from one client: {statuses}, "
          f"Postgres queries {queries:g}")
    assert set(statuses) <= {404, 429}, statuses
    assert statuses.get(429, 0) > 0, f"one client scanning was never limited: {statuses}"
    # At most one query per not-found answer the client is allowed, then none at all.
    limit = RedirectSettings().not_found_limit
    assert queries <= limit, f"{queries:g} Postgres queries for {SCAN} random slugs"


async def test_password_guessing_is_rate_limited(
    migrated: StackEnv, tenant: Tenant, topic: str
) -> None:
    management = await serve(management_app(ManagementSettings()))
    settings = RedirectSettings(clicks_topic=topic, password_attempts=5)
    redirect = await serve(redirect_app(settings))
    try:
        created = await management.post("/links", headers={"Authorization": tenant.key}, json={
            "domain": tenant.hostname, "originalURL": "https://example.com/pw",
            "password": "correct horse"})
        assert created.status == 200, await created.text()
        path = (await created.json())["path"]
        statuses = []
        for i in range(8):
            answer = await redirect.post(f"/{path}", data={"password": f"guess{i}"},
                                         headers={"Host": tenant.hostname},
                                         allow_redirects=False)
            statuses.append(answer.status)
            if answer.status == 429:
                assert int(answer.headers["Retry-After"]) > 0
        # Even the right password is refused until the window passes.
        right = await redirect.post(f"/{path}", data={"password": "correct horse"},
                                    headers={"Host": tenant.hostname}, allow_redirects=False)
        print(f"password guesses: {statuses}, then the right one: {right.status}")
        assert statuses[:5] == [403] * 5
        assert statuses[5:] == [429] * 3
        assert right.status == 429
    finally:
        await management.close()
        await redirect.close()


async def _apps(topic: str) -> dict[str, Client]:
    return {
        "management": await serve(management_app(ManagementSettings())),
        "stats": await serve(stats_app(StatsSettings(run_consumer=False))),
        "redirect": await serve(redirect_app(RedirectSettings(clicks_topic=topic))),
    }


BODY_TARGETS = {
    "management": ("/links", 3 * 1024 * 1024),
    "stats": ("/statistics/domain/1/top", 3 * 1024 * 1024),
    "redirect": ("/some-link", 256 * 1024),
}


async def test_oversized_bodies_headers_and_urls_are_refused_early(
    migrated: StackEnv, tenant: Tenant, topic: str
) -> None:
    apps = await _apps(topic)
    outcomes: dict[str, Any] = {}
    try:
        for name, client in apps.items():
            path, size = BODY_TARGETS[name]
            host = {"Host": tenant.hostname} if name == "redirect" else {}
            body = await client.post(path, data=io.BytesIO(b"{" + b" " * size + b"}"), headers={
                "Authorization": tenant.key, "Content-Type": "application/json", **host})
            header = await client.get("/health", headers={"X-Big": "a" * 20_000})
            many = await client.get("/health", headers={f"X-H{i}": "v" for i in range(300)})
            url = await client.get("/" + "a" * 20_000, headers=host)
            outcomes[name] = (body.status, header.status, many.status, url.status)
            # The edge reads a body only for a password form: for any other path it
            # answers without reading it (404 here); a form over 64 KiB is a 413.
            assert body.status == 413 or (name == "redirect" and body.status == 404), (
                name, await body.text())
            if name != "redirect":
                assert (await body.json())["success"] is False  # the JSON error shape
            assert header.status in (400, 431), name
            assert many.status in (200, 400, 431), name
            assert url.status in (400, 404, 414), name
    finally:
        for client in apps.values():
            await client.close()
    print(f"oversized (body, header, 300 headers, url): {outcomes}")
