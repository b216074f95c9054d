"""Link folders of a domain."""

from __future__ import annotations

import asyncpg

from services.management.links import access
from services.management.links import repository as links
from services.management.links.slugs import new_folder_id
from shared.apikeys import Principal
from shared.errors import NotFound


async def create(pool: asyncpg.Pool, who: Principal, domain_id: int, name: str
                 ) -> asyncpg.Record:
    async with pool.acquire() as conn:
        domain = await access.domain_by_id(conn, who, domain_id)
        return await links.insert_folder(conn, new_folder_id(), domain["id"], name)


async def list_all(pool: asyncpg.Pool, who: Principal, domain_id: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        domain = await access.domain_by_id(conn, who, domain_id)
        return await links.list_folders(conn, domain["id"])


async def get(pool: asyncpg.Pool, who: Principal, domain_id: str, folder_id: str
              ) -> asyncpg.Record:
    async with pool.acquire() as conn:
        domain = await access.domain_by_id(conn, who, domain_id)
        row = await links.get_folder(conn, domain["id"], folder_id)
    if row is None:
        raise NotFound("Folder not found")
    return row
