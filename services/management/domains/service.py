"""Domain use cases: visibility rules, settings, and write-through to Redis.

Every change takes a new record version in the same UPDATE and writes the compiled
DomainRecord through to Redis after the commit. Flipping ``caseSensitive`` also
re-keys the domain's links: their ``path_key`` is recomputed in Postgres (refused with
409 when two paths would share a key), then, after the commit, the new keys are written
first, the domain record next, and the old keys are tombstoned last, pipelined, so the
edge finds every link at every moment (it reads both the exact and the lower-cased key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from services.management.domains import repository as domains
from services.management.domains.hostnames import normalize_hostname
from services.management.domains.schemas import (
    CreateDomainRequest,
    DomainSettingsRequest,
    ListDomainsQuery,
)
from shared.apikeys import Principal
from shared.errors import BadRequest, Conflict, Forbidden, NotFound
from shared.linkrecord import RecordStore
from shared.record_repository import domain_record_from_row, fetch_link_record_by_id

_NOT_FOUND = "Domain not found"
_PIPELINE_CHUNK = 500


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
        row = await domains.create_domain_if_new(
            conn, team_id=who.team_id, hostname=hostname, unicode_hostname=unicode_hostname,
            hide_referer=request.hideReferer, link_type=request.linkType,
        )
    if row is None:
        raise Conflict("Domain already exists")
    await RecordStore(redis).put_domain(domain_record_from_row(row))
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
        await _write_through(conn, redis, row, rekeyed)
    return row


async def _write_through(
    conn: Any, redis: aioredis.Redis, row: asyncpg.Record, rekeyed: Sequence[asyncpg.Record]
) -> None:
    hostname = row["hostname"]
    for start in range(0, len(rekeyed), _PIPELINE_CHUNK):
        chunk = rekeyed[start:start + _PIPELINE_CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            batch = RecordStore(pipe)  # the versioned write script, queued in the pipeline
            for link in chunk:
                compiled = await fetch_link_record_by_id(conn, link["id"])
                if compiled is not None:
                    await batch.put_link(compiled[0], compiled[1], compiled[2])
            await pipe.execute()
    await RecordStore(redis).put_domain(domain_record_from_row(row))
    for start in range(0, len(rekeyed), _PIPELINE_CHUNK):
        chunk = rekeyed[start:start + _PIPELINE_CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            batch = RecordStore(pipe)
            for link in chunk:
                await batch.delete_link(
                    hostname, link["old_key"], link_id=link["id"], domain_id=row["id"],
                    version=link["record_version"],
                )
            await pipe.execute()
