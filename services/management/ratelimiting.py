"""Rate limiting of the management API: per API key and endpoint class.

An endpoint class is the declared endpoint (``"POST /links/bulk"``); its rule comes
from Settings (``rate_limits`` for single endpoints, else the read or write default).
The caller is the presented key (by its hash: no secret in Redis keys), or the client
address for the endpoints that need no key. The check runs before authentication, so
it also shields Postgres from floods of bad keys. Every answer of a declared endpoint,
errors included, carries the ``X-RateLimit-*`` headers; refusals are a 429 with
``Retry-After`` in Short.io's error shape. What happens while Redis is away is decided
in :mod:`shared.ratelimit` (fail open to a bounded in-process limiter).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from services.management.keys import SETTINGS
from services.management.settings import Settings
from shared.apikeys import hash_key, key_from_header
from shared.errors import ApiError, Handler, TooManyRequests, outage_error
from shared.openapi import Endpoint, endpoint_for
from shared.ratelimit import RateLimiter, RateRule
from shared.resources import CleanupCtx, create_redis

log = logging.getLogger(__name__)

RATE_LIMITER: Final = web.AppKey("rate_limiter", RateLimiter)
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def rate_limiter_ctx(settings: Settings) -> CleanupCtx:
    """The limiter with its own Redis connections (so a burst of limit checks cannot
    starve the link write-through of connections). No ping: it starts while Redis is
    away and limits in-process until Redis answers."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        url = settings.rate_limit_redis_url or settings.redis_url
        client = create_redis(settings.model_copy(update={"redis_url": url}))
        app[RATE_LIMITER] = RateLimiter(
            client,
            fallback_max_buckets=settings.rate_limit_fallback_buckets,
            fallback_cooldown=settings.rate_limit_fallback_cooldown,
        )
        try:
            yield
        finally:
            await client.aclose()

    return ctx


def rule_for(settings: Settings, endpoint: Endpoint) -> RateRule:
    rule = settings.rate_limits.get(endpoint.name)
    if rule is not None:
        return rule
    return settings.rate_limit_read if endpoint.method.upper() in _READS else (
        settings.rate_limit_write
    )


def caller(request: web.Request, endpoint: Endpoint) -> str:
    key = key_from_header(request.headers.get("Authorization")) if endpoint.auth else None
    if key:
        return "k:" + hash_key(key).hex()[:32]
    return f"ip:{request.remote or '-'}"


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    endpoint = endpoint_for(request)
    limiter = request.app.get(RATE_LIMITER)
    if endpoint is None or limiter is None:
        return await handler(request)
    rule = rule_for(request.app[SETTINGS], endpoint)
    decision = await limiter.check(f"{caller(request, endpoint)}:{endpoint.name}", rule)
    headers = decision.headers()
    if not decision.allowed:
        raise TooManyRequests(
            f"Rate limit exceeded: {rule.limit} requests per {rule.period:g} s for"
            f" {endpoint.name}; retry in {decision.retry_after} s",
            headers=headers,
        )
    try:
        response = await handler(request)
    except (ApiError, web.HTTPException) as exc:
        exc.headers.update(headers)
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        outage = outage_error(exc)
        if outage is None:
            raise  # a 500, rendered (without internals) by error_middleware
        log.warning("dependency outage on %s %s: %r", request.method, request.path, exc)
        outage.headers.update(headers)
        raise outage from exc
    if not response.prepared:
        response.headers.update(headers)
    return response
