"""The management service's application factory."""

from __future__ import annotations

from aiohttp import web

from services.management.apikeys.handlers import add_routes as add_apikey_routes
from services.management.domains.handlers import add_routes as add_domain_routes
from services.management.keys import SETTINGS
from services.management.links.handlers import add_routes as add_link_routes
from services.management.qr.handlers import add_routes as add_qr_routes
from services.management.settings import Settings
from services.management.targeting.handlers import add_routes as add_targeting_routes
from shared.errors import error_middleware
from shared.health import add_health_route
from shared.resources import db_pool_ctx, redis_ctx


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=2 * 1024 * 1024)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(db_pool_ctx(settings))
    app.cleanup_ctx.append(redis_ctx(settings))
    add_health_route(app)
    add_link_routes(app)
    add_targeting_routes(app)
    add_qr_routes(app)
    add_domain_routes(app)
    add_apikey_routes(app)
    return app
