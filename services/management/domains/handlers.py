"""HTTP handlers (endpoints registered through shared.openapi)."""

from __future__ import annotations

from aiohttp import web

from shared.openapi import Endpoint, add_endpoints

ENDPOINTS: list[Endpoint] = []


def add_routes(app: web.Application) -> None:
    add_endpoints(app, ENDPOINTS)
