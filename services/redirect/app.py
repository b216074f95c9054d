"""The redirect service's application factory."""

from __future__ import annotations

from aiohttp import web

from services.redirect.events import ClickEmitter, emitter_ctx
from services.redirect.handlers import redirect
from services.redirect.keys import EMITTER, SETTINGS
from services.redirect.settings import Settings
from shared.health import add_health_route
from shared.resources import redis_ctx


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    emitter = ClickEmitter(settings.event_queue_size)
    app[EMITTER] = emitter
    app.cleanup_ctx.append(redis_ctx(settings))
    app.cleanup_ctx.append(emitter_ctx(settings, emitter))
    add_health_route(app)
    app.router.add_get("/{path:.*}", redirect)
    return app
