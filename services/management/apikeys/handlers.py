"""HTTP handlers for API keys (linkhop's own endpoints), registered through shared.openapi.

Only private keys not restricted to a domain may manage keys
(:func:`services.management.auth.key_manager`).
"""

from __future__ import annotations

from aiohttp import web

from services.management.apikeys import service
from services.management.apikeys.schemas import (
    ApiKeyList,
    CreatedKey,
    CreateKeyRequest,
    RevokedKey,
)
from services.management.auth import key_manager
from shared.errors import NotFound
from shared.http import json_response, read_model
from shared.openapi import Endpoint, add_endpoints
from shared.resources import DB_POOL

_MAX_ID = 2**63 - 1


async def create_api_key(request: web.Request) -> web.Response:
    who = await key_manager(request)
    body = await read_model(request, CreateKeyRequest)
    created = await service.create_key(request.app[DB_POOL], who, body)
    return json_response(created.model_dump(mode="json"))


async def list_api_keys(request: web.Request) -> web.Response:
    who = await key_manager(request)
    keys = await service.list_keys(request.app[DB_POOL], who)
    return json_response([key.model_dump(mode="json") for key in keys])


async def revoke_api_key(request: web.Request) -> web.Response:
    who = await key_manager(request)
    raw = request.match_info["keyId"]
    if not raw.isdigit() or int(raw) > _MAX_ID:
        raise NotFound("API key not found (or already revoked)")
    await service.revoke_key(request.app[DB_POOL], who, int(raw))
    return json_response(RevokedKey(id=int(raw)).model_dump())


ENDPOINTS = [
    Endpoint("POST", "/api/keys", create_api_key, summary="Create an API key",
             tags=("api keys",), request=CreateKeyRequest, response=CreatedKey,
             errors=(400, 401, 403, 404, 413, 429, 503),
             description="Answers the secret once; linkhop stores only its hash."),
    Endpoint("GET", "/api/keys", list_api_keys, summary="List the team's API keys",
             tags=("api keys",), response=ApiKeyList, errors=(401, 403, 429, 503),
             description="Prefixes only: never a secret or a hash."),
    Endpoint("DELETE", r"/api/keys/{keyId:\d+}", revoke_api_key, summary="Revoke an API key",
             tags=("api keys",), response=RevokedKey, errors=(401, 403, 404, 429, 503)),
]


def add_routes(app: web.Application) -> None:
    add_endpoints(app, ENDPOINTS)
