"""``GET /health``: 200 when every dependency the app holds answers, 503 otherwise."""

from __future__ import annotations

import asyncio

from aiohttp import web

from shared.http import json_response
from shared.resources import DB_POOL, REDIS

_CHECK_TIMEOUT = 1.0


async def _check(name: str, request: web.Request) -> tuple[str, bool]:
    app = request.app
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            if name == "postgres":
                await app[DB_POOL].fetchval("SELECT 1")
            else:
                await app[REDIS].ping()
        return name, True
    except Exception:
        return name, False


async def health(request: web.Request) -> web.Response:
    names = [n for n, k in (("postgres", DB_POOL), ("redis", REDIS)) if k in request.app]
    results = dict(await asyncio.gather(*(_check(n, request) for n in names)))
    ok = all(results.values())
    return json_response({"status": "ok" if ok else "degraded", "checks": results},
                         status=200 if ok else 503)


def add_health_route(app: web.Application) -> None:
    app.router.add_get("/health", health)
