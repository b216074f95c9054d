"""The redirect service's application factory.

Every client is made in a cleanup_ctx and none of them has to answer for the service
to start: Redis is connected lazily (the breaker covers its absence), the read-only
Postgres pool is made on first need, and Kafka's absence sends events to the spool.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from services.redirect.cache import AnswerMemo
from services.redirect.clicks import Encoder
from services.redirect.edge import Edge, derive_key, service_secret
from services.redirect.events import ClickEmitter, emitter_ctx
from services.redirect.geo import GeoLocator, ProxyTrust
from services.redirect.handlers import redirect, robots, unlock
from services.redirect.invalidation import invalidation_ctx
from services.redirect.keys import EDGE, SETTINGS
from services.redirect.resolve import LazyPool, LookupUnavailable, Resolver
from services.redirect.routing import add_catch_all
from services.redirect.settings import Settings
from services.redirect.status import health, metrics
from services.redirect.unlock import AttemptLimiter
from shared.errors import REDIS_FAILURES
from shared.resources import REDIS, CleanupCtx, create_redis

log = logging.getLogger(__name__)


def _edge_ctx(settings: Settings) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        client = create_redis(settings, max_connections=settings.redis_max_connections)
        pool = LazyPool(settings)
        trust = ProxyTrust(settings.trusted_proxies)
        geo = GeoLocator(edge=settings.geo_headers, trust=trust,
                         database=settings.geoip_database)
        secret = service_secret(settings)
        visitor_key = derive_key(secret, "visitor-hash")
        edge = Edge(
            settings=settings,
            resolver=Resolver(settings, client, pool),
            emitter=ClickEmitter(settings, Encoder(visitor_key, settings.truncate_hidden_ip)),
            geo=geo,
            trust=trust,
            unlock_key=derive_key(secret, "unlock-cookie"),
            visitor_key=visitor_key,
            attempts=AttemptLimiter(settings.password_attempts,
                                    settings.password_window.total_seconds()),
            scans=AttemptLimiter(settings.not_found_limit,
                                 settings.not_found_window.total_seconds()),
            answers=AnswerMemo(settings.cache_size),
        )
        app[REDIS] = client
        app[EDGE] = edge
        try:
            await client.ping()
        except REDIS_FAILURES as exc:
            log.warning("redis unavailable at start (%r); serving from postgres", exc)
        with contextlib.suppress(LookupUnavailable):
            await pool.get()
        try:
            yield
        finally:
            await edge.resolver.close()
            await pool.close()
            geo.close()
            await client.aclose()

    return ctx


async def _emitter_ctx(app: web.Application) -> AsyncIterator[None]:
    """Click delivery; after :func:`_edge_ctx`, whose edge it needs."""
    async for _ in emitter_ctx(app[EDGE].emitter)(app):
        yield


async def _invalidation_ctx(app: web.Application) -> AsyncIterator[None]:
    edge = app[EDGE]
    async for _ in invalidation_ctx(edge.resolver, edge.subscribed)(app):
        yield


async def _gc_ctx(app: web.Application) -> AsyncIterator[None]:
    """Moves everything alive once the service has started (modules, the crawler regex,
    the geo tables, clients: ~100k objects) out of the garbage collector's reach.

    Every full collection would otherwise walk them all again: ~15-20 ms with the event
    loop stopped, every few seconds under load, which is what set the p99 of a busy
    edge (and a few per cent of its CPU). They live as long as the process, so nothing
    is lost by not collecting them; objects made later are collected as before.
    ``gc.freeze`` is process-wide: the cleanup gives the objects back (tests start many
    applications in one process)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def create_app(settings: Settings) -> web.Application:
    # No error middleware: see handlers.guarded.
    app = web.Application(client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_edge_ctx(settings))
    app.cleanup_ctx.append(_emitter_ctx)
    app.cleanup_ctx.append(_invalidation_ctx)
    app.cleanup_ctx.append(_gc_ctx)  # last: after everything the others made
    # Registered before the catch-all: no link can shadow these.
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/robots.txt", robots)
    add_catch_all(app.router, get=redirect, post=unlock)
    return app
