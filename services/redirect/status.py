"""``/health`` and ``/metrics``: registered before the link route, so no link can
shadow them."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.redirect.keys import EDGE
from services.redirect.metrics import render
from shared.errors import REDIS_FAILURES
from shared.http import json_response

_CHECK_TIMEOUT = 1.0


async def _redis_ok(request: web.Request) -> bool:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            await request.app[EDGE].resolver.redis.ping()
    except REDIS_FAILURES:
        return False
    return True


async def _postgres_ok(request: web.Request) -> bool:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            pool = await request.app[EDGE].resolver.pool.get()
            await pool.fetchval("SELECT 1")
    except Exception:
        return False
    return True


async def health(request: web.Request) -> web.Response:
    """200 while links can be answered (Redis or Postgres up; "degraded" unless all
    dependencies are), 503 when neither is. Kafka is reported but does not fail the
    check: click events wait in the spool meanwhile."""
    edge = request.app[EDGE]
    redis_ok, postgres_ok = await asyncio.gather(_redis_ok(request), _postgres_ok(request))
    checks = {
        "redis": redis_ok,
        "postgres": postgres_ok,
        "kafka": edge.emitter.kafka_up,
        "invalidation": edge.subscribed.is_set(),
    }
    serving = redis_ok or postgres_ok
    status = "ok" if all(checks.values()) else "degraded" if serving else "unavailable"
    return json_response({"status": status, "checks": checks}, status=200 if serving else 503)


async def metrics(request: web.Request) -> web.Response:
    edge = request.app[EDGE]
    body = render(edge.counters, edge.resolver, edge.emitter)
    return web.Response(body=body.encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
