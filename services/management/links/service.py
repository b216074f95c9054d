"""Link use cases: validation beyond shape, path allocation, write-through."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from services.management.domains import repository as domains
from services.management.domains.hostnames import normalize_hostname
from services.management.links import repository as links
from services.management.links.schemas import CreateLinkRequest
from services.management.links.slugs import new_id_string, random_slug
from services.management.writethrough import publish_link
from shared.apikeys import Principal
from shared.errors import BadRequest, Conflict, NotFound
from shared.linkrecord import RecordStore, path_key_for

_SLUG_ATTEMPTS = 8


async def create_link(
    pool: asyncpg.Pool, redis: aioredis.Redis, who: Principal, request: CreateLinkRequest
) -> asyncpg.Record:
    try:
        hostname, _ = normalize_hostname(request.domain)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    async with pool.acquire() as conn:
        domain = await domains.get_by_hostname(conn, hostname)
        if domain is None or not who.may_use_domain(domain["id"], domain["team_id"]):
            raise NotFound("Domain not found")
        case_sensitive: bool = domain["case_sensitive"]
        attempts = 1 if request.path else _SLUG_ATTEMPTS
        for _ in range(attempts):
            path = request.path or random_slug(case_sensitive=case_sensitive)
            row = await links.insert_link(
                conn,
                id_string=new_id_string(),
                domain_id=domain["id"],
                team_id=domain["team_id"],
                owner_key_id=who.key_id,
                path=path,
                path_key=path_key_for(path, case_sensitive),
                original_url=request.originalURL,
                title=request.title,
            )
            if row is not None:
                await publish_link(conn, RecordStore(redis), row["id"])
                return row
        if request.path:
            raise Conflict("Link with this path already exists")
        raise Conflict("could not allocate a free path, try again")
