"""The management service's application factory."""

from __future__ import annotations

from aiohttp import web

from services.management.apikeys.handlers import add_routes as add_apikey_routes
from services.management.docs.handlers import add_routes as add_docs_routes
from services.management.domains.handlers import add_routes as add_domain_routes
from services.management.keys import SETTINGS
from services.management.links.handlers import add_routes as add_link_routes
from services.management.links.ttl import ttl_sweeper_ctx
from services.management.qr.handlers import add_routes as add_qr_routes
from services.management.ratelimiting import rate_limit_middleware, rate_limiter_ctx
from services.management.settings import Settings
from services.management.targeting.handlers import add_routes as add_targeting_routes
from services.management.writethrough import outbox_drainer_ctx
from shared.errors import error_middleware
from shared.health import add_health_route
from shared.resources import db_pool_ctx, redis_ctx


def create_app(settings: Settings) -> web.Application:
    # error_middleware is outermost: it renders every error, including the 429s and the
    # outage 503s the rate limiter raises with its headers attached.
    middlewares = [error_middleware]
    if settings.rate_limit_enabled:
        middlewares.append(rate_limit_middleware)
    app = web.Application(middlewares=middlewares, client_max_size=2 * 1024 * 1024)
    app[SETTINGS] = settings
    # Starts while Postgres is away (answers 503 + Retry-After until it is back).
    app.cleanup_ctx.append(db_pool_ctx(settings, require_at_startup=False))
    app.cleanup_ctx.append(redis_ctx(settings))
    app.cleanup_ctx.append(ttl_sweeper_ctx(settings))
    app.cleanup_ctx.append(outbox_drainer_ctx(settings))
    if settings.rate_limit_enabled:
        app.cleanup_ctx.append(rate_limiter_ctx(settings))
    add_health_route(app)
    add_docs_routes(app)
    add_link_routes(app)
    add_targeting_routes(app)
    add_qr_routes(app)
    add_domain_routes(app)
    add_apikey_routes(app)
    return app
