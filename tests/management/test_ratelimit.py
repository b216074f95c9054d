"""Rate limits on the real Redis: exact under concurrency (one Lua script per check),
headers on every answer, 429 in Short.io's shape, and fail-open with an in-process limit
while the limiter's Redis is unreachable (a closed port, never the shared Redis)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.management.app import create_app
from services.management.settings import Settings
from shared.ratelimit import RateLimiter, RateRule
from shared.resources import create_redis
from shared.settings import CommonSettings
from tests.conftest import StackEnv, Tenant, serve, unique
from tests.management.test_outage import Forwarder

pytestmark = pytest.mark.stack

Client = TestClient[web.Request, web.Application]
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def app_with() -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    clients: list[Client] = []

    async def make(**overrides: object) -> Client:
        client = await serve(create_app(Settings(**overrides)))  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_fifty_concurrent_callers_admit_exactly_the_limit(settings: CommonSettings
                                                                ) -> None:
    clients = [create_redis(settings) for _ in range(2)]  # two "processes"
    limiters = [RateLimiter(client) for client in clients]
    try:
        for limit in (1, 7, 20):
            bucket, rule = unique("exact-"), RateRule(limit=limit, period=60)
            decisions = await asyncio.gather(
                *(limiters[i % 2].check(bucket, rule) for i in range(50)))
            assert sum(d.allowed for d in decisions) == limit
            assert not any(d.fallback for d in decisions)
            assert sorted(d.remaining for d in decisions if d.allowed) == list(range(limit))
            refused = [d for d in decisions if not d.allowed]
            assert all(0 < d.reset_after <= 60 and d.headers()["Retry-After"] for d in refused)
    finally:
        for client in clients:
            await client.aclose()


async def test_window_slides(settings: CommonSettings) -> None:
    client = create_redis(settings)
    try:
        limiter, bucket, rule = RateLimiter(client), unique("slide-"), RateRule(limit=2,
                                                                                period=0.3)
        assert [(await limiter.check(bucket, rule)).allowed for _ in range(3)] == [
            True, True, False]
        await asyncio.sleep(0.35)
        assert (await limiter.check(bucket, rule)).allowed
    finally:
        await client.aclose()


async def test_headers_on_every_answer_and_429_in_shortio_shape(
    migrated: StackEnv, tenant: Tenant, app_with: Callable[..., Awaitable[Client]]
) -> None:
    api = await app_with(rate_limits={"GET /api/domains": RateRule(limit=3, period=60)})
    headers = {"Authorization": tenant.key}
    remaining = []
    for _ in range(3):
        answer = await api.get("/api/domains", headers=headers)
        assert answer.status == 200
        assert answer.headers["X-RateLimit-Limit"] == "3"
        assert int(answer.headers["X-RateLimit-Reset"]) >= int(time.time())
        remaining.append(answer.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    answer = await api.get("/api/domains", headers={"Authorization": f"Bearer {tenant.key}"})
    assert answer.status == 429  # the same key, however it is written
    body = await answer.json()
    assert body["success"] is False and body["code"] == "rate_limited"
    assert body["statusCode"] == 429 and "Rate limit exceeded" in body["error"]
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    # another endpoint class of the same key has its own budget, and errors carry headers
    answer = await api.get("/domains/999999999", headers=headers)
    assert answer.status == 404 and all(h in answer.headers for h in RATE_HEADERS)
    answer = await api.post("/domains", headers=headers, json={"hostname": "bad host"})
    assert answer.status == 400 and answer.headers["X-RateLimit-Limit"] == "50"
    answer = await api.get("/api/domains", headers={"Authorization": "sk_" + "1" * 32})
    assert answer.status == 401 and all(h in answer.headers for h in RATE_HEADERS)


async def test_concurrent_http_callers_admit_exactly_the_limit(
    migrated: StackEnv, tenant: Tenant, app_with: Callable[..., Awaitable[Client]]
) -> None:
    api = await app_with(rate_limits={"GET /api/domains": RateRule(limit=10, period=60)})
    answers = await asyncio.gather(*(
        api.get("/api/domains", headers={"Authorization": tenant.key}) for _ in range(50)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] * 10 + [429] * 40


async def test_limiter_fails_open_to_a_bounded_local_limit_while_redis_is_away(
    migrated: StackEnv, tenant: Tenant, app_with: Callable[..., Awaitable[Client]]
) -> None:
    api = await app_with(
        rate_limit_redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        rate_limits={"GET /api/domains": RateRule(limit=4, period=60)},
    )
    started = time.monotonic()
    statuses = []
    for _ in range(6):
        answer = await api.get("/api/domains", headers={"Authorization": tenant.key})
        statuses.append(answer.status)
        assert all(h in answer.headers for h in RATE_HEADERS)
    assert statuses == [200] * 4 + [429] * 2
    assert time.monotonic() - started < 5  # no Redis timeout paid per request
    # links keep working too (their write-through uses the main Redis, which is up)
    answer = await api.post("/links", headers={"Authorization": tenant.key}, json={
        "domain": tenant.hostname, "originalURL": "https://example.com/"})
    assert answer.status == 200, await answer.text()


async def test_limiter_falls_back_while_redis_is_away_and_returns_to_it(
    settings: CommonSettings,
) -> None:
    target = urlsplit(settings.redis_url)
    proxy = Forwarder(target.hostname or "127.0.0.1", target.port or 6379)  # closed for now
    client = create_redis(settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{proxy.port}/0"}))
    try:
        limiter = RateLimiter(client, fallback_cooldown=0.05)
        bucket, rule = unique("away-"), RateRule(limit=2, period=60)
        decisions = [await limiter.check(bucket, rule) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert all(d.fallback for d in decisions)

        await proxy.open()
        await asyncio.sleep(0.06)  # past the cooldown: Redis is tried again
        back = await limiter.check(bucket, rule)
        assert back.allowed and not back.fallback  # Redis's own (fresh) bucket decides
    finally:
        await client.aclose()
        await proxy.close()
