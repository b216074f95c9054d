"""HTTP handlers for QR codes of links (one image, or a ZIP for many)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.management.auth import principal
from services.management.keys import SETTINGS
from services.management.links import access
from services.management.qr.render import (
    CONTENT_TYPES,
    BulkQrRequest,
    QrOptions,
    render,
    render_zip,
)
from shared.http import read_model
from shared.openapi import Endpoint, add_endpoints
from shared.resources import DB_POOL

_TAGS = ("qr",)


def _short_url(request: web.Request, hostname: str, path: str) -> str:
    return f"{request.app[SETTINGS].short_url_scheme}://{hostname}/{path}"


async def qr_code(request: web.Request) -> web.Response:
    who = await principal(request)
    options = (await read_model(request, QrOptions) if request.can_read_body else QrOptions())
    async with request.app[DB_POOL].acquire() as conn:
        link = await access.link(conn, who, request.match_info["linkIdString"])
    url = _short_url(request, link["hostname"], link["path"])
    image = await asyncio.to_thread(render, url, options)
    return web.Response(body=image, content_type=CONTENT_TYPES[options.type])


async def qr_codes_bulk(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_model(request, BulkQrRequest)
    async with request.app[DB_POOL].acquire() as conn:
        rows = await access.links_by_id_strings(conn, who, body.linkIds)
    named = [(r["id_string"], _short_url(request, r["hostname"], r["path"])) for r in rows]
    archive = await asyncio.to_thread(render_zip, named, body)
    return web.Response(status=201, body=archive, content_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="qr-codes.zip"'})


# The fixed /links/qr/bulk is listed before the pattern it would also match.
ENDPOINTS = [
    Endpoint("POST", "/links/qr/bulk", qr_codes_bulk, summary="QR codes of many links (ZIP)",
             tags=_TAGS, request=BulkQrRequest, response_content_type="application/zip"),
    Endpoint("POST", "/links/qr/{linkIdString}", qr_code, summary="QR code of a link",
             tags=_TAGS, request=QrOptions, response_content_type="image/png"),
]


def add_routes(app: web.Application) -> None:
    add_endpoints(app, ENDPOINTS)
