"""Typed application keys of the redirect service."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from services.redirect.edge import Edge
from services.redirect.settings import Settings

SETTINGS: Final = web.AppKey("settings", Settings)
EDGE: Final = web.AppKey("edge", Edge)
