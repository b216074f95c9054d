"""Redis and Postgres away under a steady load of redirects.

Redis stopped (and, since the faults instance keeps no Redis persistence, empty when it
comes back: the same as a flush) and Redis flushed: links keep redirecting from the
in-process cache and Postgres; management writes succeed and reach Redis by themselves
once it is back (the write-through outbox); the rate limiter limits in-process meanwhile.

Postgres stopped: management and statistics answer a JSON 503 with Retry-After within a
bounded time, known links keep redirecting from Redis, and everything recovers alone.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from deploy.local import stack
from shared.linkrecord import link_key, path_key_for
from tests.conftest import Tenant
from tests.faults.conftest import create_link
from tests.faults.support import FaultStack, Service, steady_load

pytestmark = [pytest.mark.faults, pytest.mark.stack]

RATE = 80.0
ANSWER_BOUND_S = 10.0  # a request during an outage is answered within this (no hang)
RECOVERY_BOUND_S = 30.0
READ_LIMIT = 5  # management reads allowed per key per 10 s in these tests


async def _call(method: str, url: str, *, key: str | None = None,
                body: dict[str, Any] | None = None) -> tuple[int, dict[str, str], Any, float]:
    headers = {"Authorization": key} if key else {}
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=ANSWER_BOUND_S + 5)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.request(
        method, url, json=body, headers=headers
    ) as answer:
        text = await answer.text()
        try:
            payload: Any = await answer.json(content_type=None)
        except ValueError:
            payload = text
        return answer.status, dict(answer.headers), payload, time.monotonic() - started


async def _until(probe: Any, ok: Any, timeout: float = RECOVERY_BOUND_S) -> Any:
    deadline = time.monotonic() + timeout
    value = await probe()
    while not ok(value) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        value = await probe()
    return value


def _redirect(fault_stack: FaultStack) -> Service:
    return Service(fault_stack, "redirect", {
        "LINKHOP_CLICKS_TOPIC": "faults-storage-clicks",
        "LINKHOP_REDIRECT_SPOOL_DIR": str(fault_stack.paths.var / "spool" / "storage"),
    })


def _management(fault_stack: FaultStack) -> Service:
    return Service(fault_stack, "management", {
        "LINKHOP_MANAGEMENT_RATE_LIMIT_READ": f'{{"limit": {READ_LIMIT}, "period": 10}}',
    })


async def _visit(url: str, host: str, path: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(
        f"{url}/{path}", headers={"Host": host}, allow_redirects=False
    ) as answer:
        return answer.status


async def test_redis_stopped_then_back_empty(
    restore_servers: FaultStack, fault_db: asyncpg.Pool, fault_redis: aioredis.Redis,
    fault_tenant: Tenant,
) -> None:
    fault_stack = restore_servers
    hot = await create_link(fault_stack, fault_db, fault_tenant)  # visited before: cached
    cold = await create_link(fault_stack, fault_db, fault_tenant)  # first visit in outage
    redirect, management = _redirect(fault_stack), _management(fault_stack)
    redirect.start()
    management.start()
    try:
        assert await _visit(redirect.url, fault_tenant.hostname, hot.path) == 302
        await asyncio.to_thread(stack.stop_redis, fault_stack.paths)
        load = asyncio.create_task(steady_load(redirect.url, fault_tenant.hostname, hot.path,
                                               requests=240, rate=RATE))
        await asyncio.sleep(0.5)
        # A link never visited: from Postgres (the read-only fallback).
        assert await _visit(redirect.url, fault_tenant.hostname, cold.path) == 302

        # Management writes succeed: the change commits with its outbox row, and the
        # management service writes the record once Redis is back (writethrough.py).
        status, headers, body, took = await _call(
            "POST", f"{management.url}/links", key=fault_tenant.key,
            body={"domain": fault_tenant.hostname, "originalURL": "https://example.com/new"},
        )
        print(f"management write with Redis down: {status} in {took:.2f}s: {body}")
        assert took < ANSWER_BOUND_S
        assert status == 200, body
        created_path = body["path"]

        # Rate limiter while Redis is away: in-process, same limits (fail open, bounded).
        statuses = []
        for _ in range(READ_LIMIT + 3):
            status, headers, body, took = await _call(
                "GET", f"{management.url}/api/domains", key=fault_tenant.key)
            statuses.append(status)
            assert took < ANSWER_BOUND_S
            if status == 429:
                assert "Retry-After" in headers
        print(f"rate limiter with Redis down: {statuses}")
        assert set(statuses) <= {200, 429}, statuses
        assert statuses.count(200) <= READ_LIMIT
        assert statuses.count(429) >= 3

        during = await load
        print(f"redis down: {during.summary()}")
        assert during.redirected == during.sent, during.summary()

        await asyncio.to_thread(stack.start_redis, fault_stack.paths)  # back, and empty
        after = await steady_load(redirect.url, fault_tenant.hostname, cold.path,
                                  requests=80, rate=RATE)
        assert after.redirected == after.sent, after.summary()
        # The write made while Redis was away reaches Redis by itself (the outbox
        # drainer: nothing has visited the link yet), then redirects.
        key = link_key(fault_tenant.hostname, path_key_for(created_path, False))
        assert await _until(lambda: fault_redis.exists(key), lambda n: n == 1) == 1, key
        assert await _until(
            lambda: _visit(redirect.url, fault_tenant.hostname, created_path),
            lambda s: s == 302) == 302
    finally:
        redirect.stop()
        management.stop()


async def test_redis_flushed_refills_from_postgres(
    fault_stack: FaultStack, fault_db: asyncpg.Pool, fault_redis: aioredis.Redis,
    fault_tenant: Tenant,
) -> None:
    link = await create_link(fault_stack, fault_db, fault_tenant)
    redirect = _redirect(fault_stack)
    redirect.start()
    try:
        assert await fault_redis.keys(f"lh:l:{fault_tenant.hostname}:*")
        await fault_redis.flushall()  # the faults instance only
        load = await steady_load(redirect.url, fault_tenant.hostname, link.path,
                                 requests=160, rate=RATE)
        print(f"redis flushed: {load.summary()}")
        assert load.redirected == load.sent, load.summary()
        refilled = await _until(lambda: fault_redis.keys(f"lh:l:{fault_tenant.hostname}:*"),
                                bool)
        assert refilled, "the redirect service did not refill Redis from Postgres"
    finally:
        redirect.stop()


async def test_postgres_stopped_answers_503_and_recovers(
    restore_servers: FaultStack, fault_db: asyncpg.Pool, fault_tenant: Tenant,
) -> None:
    fault_stack = restore_servers
    link = await create_link(fault_stack, fault_db, fault_tenant)
    redirect, management = _redirect(fault_stack), _management(fault_stack)
    stats = Service(fault_stack, "stats", {"LINKHOP_CLICKS_TOPIC": "faults-storage-clicks",
                                           "LINKHOP_STATS_CONSUMER_GROUP": "faults-storage"})
    for service in (redirect, management, stats):
        service.start()
    key = fault_tenant.key
    calls = [
        ("GET", f"{management.url}/links/{link.id_string}", None),
        ("POST", f"{management.url}/links",
         {"domain": fault_tenant.hostname, "originalURL": "https://example.com/pg"}),
        ("GET", f"{management.url}/api/domains", None),
        ("GET", f"{stats.url}/statistics/link/{link.id_string}", None),
        ("GET", f"{stats.url}/statistics/domain/{fault_tenant.domain_id}", None),
    ]
    try:
        for method, url, body in calls:
            status, _, answer, _ = await _call(method, url, key=key, body=body)
            assert status == 200, (url, answer)
        await asyncio.to_thread(stack.stop_postgres, fault_stack.paths)
        load = asyncio.create_task(steady_load(redirect.url, fault_tenant.hostname, link.path,
                                               requests=320, rate=RATE))
        outcomes = []
        for method, url, body in calls:
            status, headers, answer, took = await _call(method, url, key=key, body=body)
            outcomes.append((method, url.split(":", 2)[2], status, round(took, 2)))
            assert status == 503, (url, status, answer)
            assert isinstance(answer, dict) and answer.get("success") is False, answer
            assert int(headers["Retry-After"]) > 0
            assert took < ANSWER_BOUND_S, (url, took)
        print(f"postgres down: {outcomes}")
        during = await load
        print(f"postgres down, redirects: {during.summary()}")
        assert during.redirected == during.sent, during.summary()

        started = time.monotonic()
        await asyncio.to_thread(stack.start_postgres, fault_stack.paths)
        for method, url, _ in calls:
            if method == "POST":
                continue  # not repeated: it would create a second link

            async def probe(method: str = method, url: str = url) -> int:
                return (await _call(method, url, key=key))[0]

            assert await _until(probe, lambda s: s == 200) == 200, url
        print(f"postgres back: every endpoint answers 200 after "
              f"{time.monotonic() - started:.1f}s")
    finally:
        for service in (redirect, management, stats):
            service.stop()
