"""The stats service's application factory: the statistics API and, unless disabled,
the click consumer running as a background task of the same process."""

from __future__ import annotations

from aiohttp import web

from services.stats.cleanup import cleanup_ctx
from services.stats.consumer import consumer_ctx
from services.stats.filter_rollups import filter_rollups_ctx
from services.stats.handlers import add_routes
from services.stats.keys import SETTINGS
from services.stats.month_carry import month_carry_ctx
from services.stats.queries import READ_SETTINGS
from services.stats.settings import Settings
from shared.errors import error_middleware
from shared.health import add_health_route
from shared.resources import db_pool_ctx


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(db_pool_ctx(settings, session=READ_SETTINGS))
    if settings.run_consumer:
        app.cleanup_ctx.append(consumer_ctx(settings))
        app.cleanup_ctx.append(cleanup_ctx(settings))
        app.cleanup_ctx.append(filter_rollups_ctx(settings))
        app.cleanup_ctx.append(month_carry_ctx(settings))
    add_health_route(app)
    add_routes(app)
    return app
