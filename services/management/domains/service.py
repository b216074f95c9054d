"""Domain use cases: visibility rules, settings, and write-through to Redis.

Every change takes a new record version in the same UPDATE and writes the compiled
DomainRecord through to Redis after the commit (services/management/writethrough.py).
Flipping ``caseSensitive`` also re-keys the domain's links: their ``path_key`` is
recomputed in Postgres (refused with 409 when two paths would share a key), then, after
the commit, the new keys are written first, the domain record next, and the old keys
are tombstoned last, so the edge finds every link at every moment (it reads both the
exact and the lower-cased key).
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from services.management.domains import repository as domains
from services.management.domains.hostnames import normalize_hostname
from services.management.domains.schemas import (
    CreateDomainRequest,
    DomainSettingsRequest,
    ListDomainsQuery,
)
from services.management.writethrough import Changes, deliver, queue
from shared.apikeys import Principal
from shared.errors import BadRequest, Conflict, Forbidden, NotFound

_NOT_FOUND = "Domain not found"


def _visible(who: Principal, row: asyncpg.Record | None) -> asyncpg.Record:
    # Another team's domain (or, for a restricted key, any other domain) is answered
    # exactly like a missing one, so keys learn nothing about domains they may not use.
    if row is None or not who.may_use_domain(row["id"], row["team_id"]):
        raise NotFound(_NOT_FOUND)
    return row


async def list_domains(pool: asyncpg.Pool, who: Principal, query: ListDomainsQuery
                       ) -> list[asyncpg.Record]:
    if query.teamId is not None and query.teamId != who.team_id:
        raise Forbidden("teamId is not the team of this API key")
    if query.noTeamId:
        return []  # every linkhop domain belongs to a team
    async with pool.acquire() as conn:
        return await domains.list_domains(
            conn, who.team_id, only_id=who.domain_id, pattern=query.pattern,
            limit=query.limit, offset=query.offset,
        )


async def get_domain(pool: asyncpg.Pool, who: Principal, domain_id: int) -> asyncpg.Record:
    async with pool.acquire() as conn:
        return _visible(who, await domains.get_by_id(conn, domain_id))


async def create_domain(
    pool: asyncpg.Pool, redis: aioredis.Redis, who: Principal, request: CreateDomainRequest
) -> asyncpg.Record:
    if who.domain_id is not None:
        raise Forbidden("a key restricted to one domain may not add domains")
    try:
        hostname, unicode_hostname = normalize_hostname(request.hostname)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await domains.create_domain_if_new(
                conn, team_id=who.team_id, hostname=hostname, unicode_hostname=unicode_hostname,
                hide_referer=request.hideReferer, link_type=request.linkType,
            )
            if row is None:
                raise Conflict("Domain already exists")
            queued = await queue(conn, Changes(domain_ids=[row["id"]]))
        await deliver(conn, redis, queued)
    return row


async def update_settings(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    who: Principal,
    domain_id: int,
    request: DomainSettingsRequest,
) -> asyncpg.Record:
    changes = request.changes()
    async with pool.acquire() as conn:
        async with conn.transaction():
            current = _visible(who, await domains.lock_by_id(conn, domain_id))
            rekeyed: list[asyncpg.Record] = []
            wanted = changes.get("case_sensitive")
            if wanted is not None and wanted != current["case_sensitive"]:
                if not wanted:
                    collisions = await domains.case_collisions(conn, domain_id)
                    if collisions:
                        raise Conflict(
                            "caseSensitive cannot be turned off: some paths differ only in"
                            " case", details={"collisions": collisions},
                        )
                rekeyed = await domains.rekey_links(conn, domain_id, bool(wanted))
            row = await domains.update_settings(conn, domain_id, changes)
            queued = await queue(conn, Changes(
                link_ids=[link["id"] for link in rekeyed],
                domain_ids=[domain_id],
                tombstones=[(row["hostname"], link["old_key"], link["id"], domain_id,
                             link["record_version"]) for link in rekeyed],
            ))
        await deliver(conn, redis, queued)
    return row

