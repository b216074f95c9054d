"""Targeting use cases: each change bumps the link's record version in the same
transaction and rewrites its compiled record in Redis before answering."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from services.management.links import access
from services.management.links import repository as links
from services.management.links.service import refuse_loops
from services.management.targeting import repository as targeting
from services.management.writethrough import Changes, deliver, queue
from shared.apikeys import Principal
from shared.errors import NotFound

Change = Callable[[Any, int], Awaitable[bool]]


async def read_rules(pool: asyncpg.Pool, who: Principal, id_string: str, *, regions: bool
                     ) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        link = await access.link(conn, who, id_string)
        if regions:
            return await targeting.regions(conn, link["id"])
        return await targeting.countries(conn, link["id"])


async def change(pool: asyncpg.Pool, redis: aioredis.Redis, who: Principal, id_string: str,
                 apply: Change, urls: list[str]) -> None:
    """Runs ``apply(conn, link_id)`` (False: nothing to change -> 404) and writes through."""
    async with pool.acquire() as conn:
        await refuse_loops(conn, urls)
        async with conn.transaction():
            link = access.visible(who, await links.get_link_for_update(conn, id_string))
            if not await apply(conn, link["id"]):
                raise NotFound("Targeting rule not found")
            await links.bump_versions(conn, [link["id"]])
            queued = await queue(conn, Changes(link_ids=[link["id"]]))
        await deliver(conn, redis, queued)


def upsert_countries(rules: list[tuple[str, str]]) -> Change:
    async def apply(conn: Any, link_id: int) -> bool:
        await targeting.upsert_countries(conn, link_id, rules)
        return True
    return apply


def upsert_regions(rules: list[tuple[str, str, str]]) -> Change:
    async def apply(conn: Any, link_id: int) -> bool:
        await targeting.upsert_regions(conn, link_id, rules)
        return True
    return apply


def delete_country(country: str) -> Change:
    async def apply(conn: Any, link_id: int) -> bool:
        return await targeting.delete_country(conn, link_id, country)
    return apply


def delete_region(country: str, region: str) -> Change:
    async def apply(conn: Any, link_id: int) -> bool:
        return await targeting.delete_region(conn, link_id, country, region)
    return apply
