"""The management service's view of who is calling."""

from __future__ import annotations

from aiohttp import web

from shared.apikeys import Principal
from shared.auth import authenticate
from shared.errors import Forbidden
from shared.resources import DB_POOL


async def principal(request: web.Request, *, allow_public: bool = False) -> Principal:
    who = await authenticate(request.app[DB_POOL], request.headers.get("Authorization"))
    if who.kind == "public" and not allow_public:
        raise Forbidden("public API keys may only create links")
    return who
