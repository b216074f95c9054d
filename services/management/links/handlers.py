"""HTTP handlers for links: parse, authorise, call the service, present."""

from __future__ import annotations

from aiohttp import web

from services.management.auth import principal
from services.management.keys import SETTINGS
from services.management.links import service
from services.management.links.presenter import link_json
from services.management.links.schemas import CreateLinkRequest
from shared.http import json_response, read_model
from shared.openapi import Endpoint, add_endpoints
from shared.resources import DB_POOL, REDIS


async def create_link(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_model(request, CreateLinkRequest)
    row = await service.create_link(request.app[DB_POOL], request.app[REDIS], who, body)
    return json_response(link_json(row, request.app[SETTINGS].short_url_scheme))


ENDPOINTS = [
    Endpoint("POST", "/links", create_link, summary="Create a link", tags=("links",),
             request=CreateLinkRequest, errors=(400, 401, 403, 404, 409, 429, 503)),
]


def add_routes(app: web.Application) -> None:
    add_endpoints(app, ENDPOINTS)
