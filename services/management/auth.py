"""The management service's view of who is calling."""

from __future__ import annotations

from aiohttp import web

from shared.apikeys import Principal
from shared.auth import authenticate
from shared.errors import Forbidden
from shared.resources import DB_POOL


async def principal(request: web.Request, *, allow_public: bool = False) -> Principal:
    """The authenticated key; public keys are refused unless ``allow_public``
    (they may only create links)."""
    who = await authenticate(request.app[DB_POOL], request.headers.get("Authorization"))
    if who.kind == "public" and not allow_public:
        raise Forbidden("public API keys may only create links")
    return who


async def key_manager(request: web.Request) -> Principal:
    """A private key valid for all of its team's domains: the only kind that may
    create, list and revoke API keys (a restricted key could otherwise mint itself an
    unrestricted one)."""
    who = await principal(request)
    if who.domain_id is not None:
        raise Forbidden("only keys not restricted to one domain may manage API keys")
    return who
