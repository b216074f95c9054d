"""Typed application keys of the redirect service."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from services.redirect.events import ClickEmitter
from services.redirect.settings import Settings

SETTINGS: Final = web.AppKey("settings", Settings)
EMITTER: Final = web.AppKey("emitter", ClickEmitter)
