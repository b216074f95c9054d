"""Typed application keys of the management service."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from services.management.settings import Settings

SETTINGS: Final = web.AppKey("settings", Settings)
