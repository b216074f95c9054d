"""Statistics API handlers (Short.io's statistics endpoints as the model)."""

from __future__ import annotations

from aiohttp import web

from services.stats import repository
from shared.auth import authenticate
from shared.errors import Forbidden, NotFound
from shared.http import json_response
from shared.resources import DB_POOL


async def link_statistics(request: web.Request) -> web.Response:
    pool = request.app[DB_POOL]
    who = await authenticate(pool, request.headers.get("Authorization"))
    if who.kind == "public":
        raise Forbidden("public API keys may only create links")
    async with pool.acquire() as conn:
        link = await repository.link_owner(conn, request.match_info["link_id"])
        if link is None or not who.may_use_domain(link["domain_id"], link["team_id"]):
            raise NotFound("Link not found")
        total = await repository.link_total(conn, link["id"])
    return json_response({"totalClicks": total})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/statistics/link/{link_id}", link_statistics)
