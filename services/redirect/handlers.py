"""The visitor-facing handlers: gather the facts of a visit, let :func:`rules.decide`
choose, render the answer, and emit one click event."""

from __future__ import annotations

import asyncio
from time import time

from aiohttp import hdrs, web

from services.redirect.clicks import LinkFacts, link_facts
from services.redirect.edge import Answer, Edge
from services.redirect.geo import Place
from services.redirect.keys import EDGE
from services.redirect.pages import (
    cloak_page,
    gone_page,
    not_found_page,
    password_page,
    robots_txt,
)
from services.redirect.resolve import LookupUnavailable, path_of, query_of
from services.redirect.rules import (
    Decision,
    Outcome,
    Visit,
    decide,
    depends_on_visit,
    is_gone,
)
from services.redirect.unlock import cookie_name, make_token, token_valid
from services.redirect.urls import safe_location
from services.redirect.visitor import device_of, visitor_hash
from shared.errors import REDIS_FAILURES, ServiceUnavailable, json_error
from shared.linkrecord import DomainRecord, LinkRecord
from shared.passwords import verify_password

_UNAVAILABLE = "link lookup unavailable, retry shortly"
_NO_VISIT = Visit(now=0.0)
_NOINDEX = "noindex"


async def _resolve(edge: Edge, request: web.Request, path: str
                   ) -> tuple[DomainRecord | None, LinkRecord | None] | None:
    """The records, or None when neither Redis nor Postgres can answer."""
    try:
        return await edge.resolver.lookup(edge.resolver.hostname(request.host), path)
    except LookupUnavailable:
        edge.counters.count("unavailable")
        return None


def _unavailable() -> web.Response:
    # Rendered here, not by shared.errors.error_middleware: a middleware costs every
    # request a few microseconds (about a tenth of the cache-hit path), and a lookup
    # outage is the only error a visit can meet. Same body shape, same renderer.
    return json_error(ServiceUnavailable(_UNAVAILABLE, headers={"Retry-After": "2"}))


async def redirect(request: web.Request) -> web.StreamResponse:
    # Every visit comes here, at ~30 us per request for the whole of aiohttp
    # (docs/benchmarks.md): each line is paid per request, so the common case, a
    # redirect that depends on the records alone, is answered from one memo entry
    # (edge.answers) without re-deciding anything, and nothing on the way is awaited.
    # Header names are aiohttp's istr constants: a str key is case-folded on every get.
    edge = request.app[EDGE]
    headers = request.headers
    peer = request.remote
    client_ip = edge.trust.client_ip_of(peer, headers)
    raw_path = request.raw_path
    request_key = (request.host, raw_path)
    hot = edge.answers.get(request_key, edge.resolver.epoch)
    if hot is not None:
        status, response_headers, path, facts, hide_referer, hide_ip = hot
        place = edge.geo.locate(peer, client_ip, headers)
        edge.counters.count(facts[1])
        edge.emitter.emit((time(), facts[0], path, facts, (
            client_ip, headers.get(hdrs.USER_AGENT, ""),
            None if hide_referer else headers.get(hdrs.REFERER),
            place.country, place.region, hide_ip)))
        return web.Response(status=status, headers=response_headers)
    resolver = edge.resolver
    path = path_of(raw_path)
    hostname = resolver.hostname(request.host)
    found = resolver.find(hostname, path)  # no coroutine per cache hit
    repeated = True  # the records were cached: a link visited again
    if isinstance(found, tuple):
        domain, link = found
    else:
        repeated = False
        if edge.scans.exceeded(client_ip or ""):
            found.close()  # never started: a scanner costs no query
            return _scan_limited(edge)
        try:
            domain, link = await found
        except LookupUnavailable:
            edge.counters.count("unavailable")
            return _unavailable()
    if not path:
        return _root(edge, client_ip, domain)
    if link is None or domain is None:
        if not edge.scans.allowed(edge.scans.hit(client_ip or "")):
            return _scan_limited(edge)
        missing = decide(domain, link, _NO_VISIT)
        edge.counters.count(missing.outcome)
        return _render(missing, link, domain, request)
    now = time()
    raw_query = query_of(raw_path)
    user_agent = headers.get(hdrs.USER_AGENT, "")
    place = edge.geo.locate(peer, client_ip, headers)
    memoisable = not raw_query or link.skip_qs
    answer = edge.decisions.get(link, domain) if memoisable else None
    if answer is None:
        decision = await _decide(edge, request, domain, link, now, raw_query, user_agent,
                                 client_ip, place)
        answer = _answer(link, domain, decision)
        if memoisable and not depends_on_visit(link):
            edge.decisions.put(link, domain, answer)
    decision, facts, redirect_headers = answer
    edge.counters.count(facts[1])
    # Plain tuples: the background sender encodes them (services/redirect/clicks.py).
    edge.emitter.emit((now, facts[0], path, facts, (
        client_ip, user_agent, None if domain.hide_referer else headers.get(hdrs.REFERER),
        place.country, place.region, domain.hide_visitor_ip)))
    if redirect_headers is None:
        return _render(decision, link, domain, request)
    if (repeated and memoisable and decision.outcome is Outcome.REDIRECT
            and not depends_on_visit(link)):
        _remember(edge, request_key, hostname, path, domain, decision.status,
                  redirect_headers, facts)
    return web.Response(status=decision.status, headers=redirect_headers)


def _remember(edge: Edge, request_key: tuple[str, str], hostname: str, path: str,
              domain: DomainRecord, status: int, response_headers: dict[str, str],
              facts: LinkFacts) -> None:
    """Keeps a redirect that depends on the records alone for the next visits of the
    same Host header and raw path, as long as the records it came from are cached.
    Only for links met again while cached: a link seen once (the long tail) is not
    worth the entry."""
    expires = edge.resolver.expiry(hostname, path, domain)
    if expires is None:
        return
    edge.answers.put(request_key, (status, response_headers, path, facts, domain.hide_referer,
                                   domain.hide_visitor_ip),
                     expires, edge.resolver.epoch)


def _answer(link: LinkRecord, domain: DomainRecord, decision: Decision) -> Answer:
    """The decision with what every visit it answers needs: the link's half of the click
    event, and for a redirect (not a page) the response headers."""
    utm = link.utm
    facts = link_facts(link.link_id, link.domain_id, decision.status, decision.ab_side,
                       utm.get("utm_source"), utm.get("utm_medium"), utm.get("utm_campaign"),
                       decision.outcome.value)
    location = decision.location
    headers = (_redirect_headers(location, domain)
               if location is not None and decision.outcome is not Outcome.CLOAK else None)
    return decision, facts, headers


async def _decide(edge: Edge, request: web.Request, domain: DomainRecord, link: LinkRecord,
                  now: float, raw_query: str, user_agent: str, client_ip: str | None,
                  place: Place) -> Decision:
    unlocked = False
    clicks = None
    if link.password_hash:
        unlocked = token_valid(edge.unlock_key, request.cookies.get(cookie_name(link.link_id)),
                               link.link_id, link.password_hash, now)
    if link.clicks_limit is not None and not is_gone(link, now):
        # Only visits that would reach the destination use up the limit; the password
        # form only looks at the counter.
        clicks = await _count_click(edge, link, peek=bool(link.password_hash) and not unlocked)
    return decide(domain, link, Visit(
        now=now,
        user_agent_device=device_of(user_agent) if link.iphone_url or link.android_url
        else None,
        country=place.country,
        region=place.region,
        raw_query=raw_query,
        visitor=visitor_hash(edge.visitor_key, client_ip or "", user_agent)
        if link.split_url else "",
        unlocked=unlocked,
        clicks=clicks,
    ))


def _root(edge: Edge, client_ip: str | None, domain: DomainRecord | None
          ) -> web.StreamResponse:
    if domain is not None and not domain.deleted and domain.root_redirect:
        edge.counters.count("root")
        return web.Response(status=domain.redirect_type,
                            headers={"Location": safe_location(domain.root_redirect)})
    if not edge.scans.allowed(edge.scans.hit(client_ip or "")):
        return _scan_limited(edge)
    edge.counters.count("not_found")
    return not_found_page()


def _scan_limited(edge: Edge) -> web.Response:
    """Too many not-found answers for one client: it is scanning for links."""
    edge.counters.count("scan_limited")
    window = int(edge.settings.not_found_window.total_seconds())
    return web.Response(status=429, text="Too many unknown links; try again later.\n",
                        headers={"Retry-After": str(window)})


def _render(decision: Decision, link: LinkRecord | None, domain: DomainRecord | None,
            request: web.Request) -> web.StreamResponse:
    outcome = decision.outcome
    if decision.location is not None and outcome is not Outcome.CLOAK:
        return web.Response(status=decision.status,
                            headers=_redirect_headers(decision.location, domain))
    if outcome is Outcome.CLOAK:
        assert decision.location is not None
        response = cloak_page(decision.location, link.title if link else None)
    elif outcome is Outcome.PASSWORD:
        response = password_page(request.rel_url.raw_path_qs)
    elif outcome is Outcome.EXPIRED:
        response = gone_page()
    else:
        response = not_found_page()
    if domain is not None and domain.robots == _NOINDEX:
        response.headers["X-Robots-Tag"] = _NOINDEX
    return response


def _redirect_headers(location: str, domain: DomainRecord | None) -> dict[str, str]:
    if domain is not None and domain.robots == _NOINDEX:
        return {"Location": location, "X-Robots-Tag": _NOINDEX}
    return {"Location": location}


async def _count_click(edge: Edge, link: LinkRecord, *, peek: bool) -> int | None:
    """This visit's number against the clicks limit (INCR in Redis, shared by every
    worker). None when Redis cannot say: the visit is let through (fail open)."""
    resolver = edge.resolver
    if not resolver.breaker.allow():
        return None
    key = f"lh:c:{link.link_id}"
    try:
        if peek:
            raw = await resolver.redis.get(key)
            value = int(raw or 0) + 1
        else:
            value = int(await resolver.redis.incr(key))
    except REDIS_FAILURES:
        resolver.breaker.failure()
        return None
    resolver.breaker.success()
    return value


async def unlock(request: web.Request) -> web.StreamResponse:
    """POST of the password form: rate limited per link and client, checked against the
    slow hash in a thread (never on the event loop), answered with a signed cookie."""
    edge = request.app[EDGE]
    path = path_of(request.raw_path)
    resolved = await _resolve(edge, request, path)
    if resolved is None:
        return _unavailable()
    domain, link = resolved
    now = time()
    if domain is None or link is None or not link.password_hash or is_gone(link, now):
        return await redirect(request)  # nothing to unlock: answer as a visit would
    client_ip = edge.trust.client_ip_of(request.remote, request.headers)
    attempts = await _attempt(edge, f"{link.link_id}:{client_ip}")
    if attempts > edge.settings.password_attempts:
        edge.counters.count("password_limited")
        response = password_page(request.rel_url.raw_path_qs, status=429,
                                 message="Too many attempts; try again later.")
        response.headers["Retry-After"] = str(int(edge.settings.password_window.total_seconds()))
        return response
    form = await request.post()
    candidate = form.get("password")
    if not isinstance(candidate, str) or not await asyncio.to_thread(
        verify_password, link.password_hash, candidate
    ):
        edge.counters.count("password_rejected")
        return password_page(request.rel_url.raw_path_qs, status=403,
                             message="Wrong password, try again.")
    ttl = int(edge.settings.unlock_ttl.total_seconds())
    token = make_token(edge.unlock_key, link.link_id, link.password_hash, int(now) + ttl)
    response = web.Response(status=303, headers={"Location": request.rel_url.raw_path_qs,
                                                 "Cache-Control": "no-store"})
    response.set_cookie(cookie_name(link.link_id), token, max_age=ttl, path="/",
                        httponly=True, samesite="Lax", secure=request.secure)
    return response


async def _attempt(edge: Edge, key: str) -> int:
    """Attempts in the current window, shared by workers through Redis; counted in
    process when Redis is away, so an outage never allows unlimited guessing."""
    resolver = edge.resolver
    window = int(edge.settings.password_window.total_seconds())
    if resolver.breaker.allow():
        try:
            async with resolver.redis.pipeline(transaction=True) as pipe:
                pipe.incr(f"lh:pw:{key}")
                pipe.expire(f"lh:pw:{key}", window, nx=True)
                count, _ = await pipe.execute()
            resolver.breaker.success()
            return int(count)
        except REDIS_FAILURES:
            resolver.breaker.failure()
    return edge.attempts.hit(key)


async def robots(request: web.Request) -> web.StreamResponse:
    edge = request.app[EDGE]
    try:
        domain, _ = await edge.resolver.lookup(edge.resolver.hostname(request.host),
                                               "robots.txt")
    except LookupUnavailable:
        domain = None
    return robots_txt(domain.robots if domain is not None else "allow")
