"""The visitor-facing handler."""

from __future__ import annotations

from aiohttp import web

from services.redirect.keys import EMITTER
from services.redirect.resolve import hostname_of, lookup
from shared.events import ClickEvent
from shared.resources import REDIS


async def redirect(request: web.Request) -> web.StreamResponse:
    hostname = hostname_of(request.host)
    domain, link = await lookup(request.app[REDIS], hostname, request.raw_path.split("?")[0])
    if domain is None or link is None or link.deleted or link.archived:
        return web.Response(status=404, text="Not found", content_type="text/plain")
    status = link.redirect_type or domain.redirect_type
    request.app[EMITTER].emit(
        ClickEvent(
            link_id=link.link_id,
            domain_id=link.domain_id,
            path=link.path,
            status=status,
            ip=None if domain.hide_visitor_ip else request.remote,
            user_agent=request.headers.get("User-Agent"),
            referer=None if domain.hide_referer else request.headers.get("Referer"),
        )
    )
    return web.Response(status=status, headers={"Location": link.url})
