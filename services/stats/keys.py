"""Typed application keys of the stats service."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from services.stats.settings import Settings

SETTINGS: Final = web.AppKey("settings", Settings)
