"""Link use cases besides creation: read, change, delete, archive, tag, duplicate.

Every change gives the row a new record version in the statement that makes it and
rewrites (or tombstones) the compiled record in Redis before answering.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from services.management.links import access
from services.management.links import repository as links
from services.management.links.creation import LOOP, PATH_TAKEN
from services.management.links.repository import NewLink
from services.management.links.schemas import COLUMN_OF, UpdateLinkRequest
from services.management.links.slugs import new_id_string, slug_for
from services.management.links.validation import destination_host
from services.management.writethrough import Changes, deliver, queue, tombstones_of
from shared.apikeys import Principal
from shared.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from shared.linkrecord import path_key_for
from shared.passwords import hash_password

_NOT_NULL_DEFAULTS: dict[str, Any] = {"tags": [], "skip_qs": False, "cloaking": False,
                                      "archived": False}
_ROUNDS = 8


async def refuse_loops(conn: Any, urls: list[str]) -> None:
    if await links.own_hostnames(conn, sorted({destination_host(u) for u in urls})):
        raise BadRequest(LOOP)


async def get_link(pool: asyncpg.Pool, who: Principal, id_string: str) -> asyncpg.Record:
    async with pool.acquire() as conn:
        return await access.link(conn, who, id_string)


async def update_link(pool: asyncpg.Pool, redis: aioredis.Redis, who: Principal,
                      id_string: str, request: UpdateLinkRequest) -> asyncpg.Record:
    sent = request.model_fields_set
    values: dict[str, Any] = {}
    for field in sent & COLUMN_OF.keys():
        column = COLUMN_OF[field]
        value = getattr(request, field)
        values[column] = _NOT_NULL_DEFAULTS.get(column) if value is None else value
    if "path" in values and values["path"] is None:
        raise BadRequest("path: cannot be cleared")
    if "password" in sent:
        password = request.password
        values["password_hash"] = (
            None if password is None else await asyncio.to_thread(hash_password, password))
    async with pool.acquire() as conn:
        await refuse_loops(conn, [v for k, v in values.items()
                                  if k.endswith("_url") and isinstance(v, str)])
        async with conn.transaction():
            old = access.visible(who, await links.get_link_for_update(conn, id_string))
            if "folderId" in sent:
                values["folder_id"] = await _folder(conn, old["domain_id"], request.folderId)
            if "path" in values:
                domain = await access.domain_by_id(conn, who, old["domain_id"])
                values["path_key"] = path_key_for(values["path"], domain["case_sensitive"])
            try:
                row = await links.update_link(conn, old["id"], values)
            except asyncpg.UniqueViolationError:
                raise Conflict(PATH_TAKEN) from None
            changes = Changes(link_ids=[row["id"]])
            if row["path_key"] != old["path_key"]:  # the old key must stop redirecting
                changes.tombstones = [(old["hostname"], old["path_key"], old["id"],
                                       old["domain_id"], await links.next_version(conn))]
            queued = await queue(conn, changes)
        await deliver(conn, redis, queued)
    return row


async def _folder(conn: Any, domain_id: int, folder_id: str | None) -> int | None:
    if folder_id is None:
        return None
    found = await links.folder_ids(conn, domain_id, [folder_id])
    if folder_id not in found:
        raise NotFound("Folder not found")
    return found[folder_id]


async def delete_links(pool: asyncpg.Pool, redis: aioredis.Redis, who: Principal,
                       id_strings: list[str]) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            rows = await access.links_by_id_strings(conn, who, id_strings)
            removed = await links.delete_links(conn, [r["id"] for r in rows])
            queued = await queue(conn, Changes(tombstones=tombstones_of(removed)))
        await deliver(conn, redis, queued)


async def change_links(pool: asyncpg.Pool, redis: aioredis.Redis, who: Principal,
                       id_strings: list[str], *, archived: bool | None = None,
                       add_tag: str | None = None) -> int:
    """Archive, unarchive or tag; the records are rewritten with new versions."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            rows = await access.links_by_id_strings(conn, who, id_strings)
            ids = await links.bump_versions(conn, [r["id"] for r in rows], archived=archived,
                                            add_tag=add_tag)
            queued = await queue(conn, Changes(link_ids=ids))
        await deliver(conn, redis, queued)
    return len(ids)


async def duplicate_link(pool: asyncpg.Pool, redis: aioredis.Redis, who: Principal,
                         id_string: str, path: str | None) -> asyncpg.Record:
    """A copy of the link (settings and targeting) at ``path`` or a generated one."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            source = access.visible(who, await links.get_link_for_update(conn, id_string))
            domain = await access.domain_by_id(conn, who, source["domain_id"])
            row = await _insert_copy(conn, source, domain, who, path)
            await links.copy_targeting(conn, source["id"], row["id"])
            queued = await queue(conn, Changes(link_ids=[row["id"]]))
        await deliver(conn, redis, queued)
        fresh = await links.get_link(conn, row["id_string"])
    assert fresh is not None  # just created in this request
    return fresh


async def _insert_copy(conn: Any, source: asyncpg.Record, domain: asyncpg.Record,
                       who: Principal, path: str | None) -> asyncpg.Record:
    case_sensitive: bool = domain["case_sensitive"]
    link_type = "random" if domain["link_type"] == "increment" else domain["link_type"]
    for _ in range(1 if path else _ROUNDS):
        new_path = path or slug_for(link_type, case_sensitive=case_sensitive)
        copy = NewLink(
            id_string=new_id_string(), domain_id=source["domain_id"],
            team_id=source["team_id"], owner_key_id=who.key_id, path=new_path,
            path_key=path_key_for(new_path, case_sensitive), original_url=source["original_url"],
            folder_id=source["folder_id"], title=source["title"], tags=list(source["tags"]),
            expires_at=source["expires_at"], expired_url=source["expired_url"],
            password_hash=source["password_hash"], redirect_type=source["redirect_type"],
            clicks_limit=source["clicks_limit"], android_url=source["android_url"],
            iphone_url=source["iphone_url"], split_url=source["split_url"],
            split_percent=source["split_percent"], utm_source=source["utm_source"],
            utm_medium=source["utm_medium"], utm_campaign=source["utm_campaign"],
            utm_term=source["utm_term"], utm_content=source["utm_content"],
            skip_qs=source["skip_qs"], cloaking=source["cloaking"],
            archived=source["archived"], source=source["source"], ttl=source["ttl"],
        )
        rows = await links.insert_links(conn, [copy])
        if rows:
            return rows[0]
    if path:
        raise Conflict(PATH_TAKEN)
    raise ServiceUnavailable("could not allocate a free path, try again")


async def expand(pool: asyncpg.Pool, who: Principal, domain_name: str, path: str
                 ) -> asyncpg.Record:
    async with pool.acquire() as conn:
        domain = await access.domain_by_name(conn, who, domain_name)
        row = await links.get_by_path_key(
            conn, domain["id"], path_key_for(path.lstrip("/"), domain["case_sensitive"]))
        return access.visible(who, row)


async def by_url(pool: asyncpg.Pool, who: Principal, domain_ref: str | int, url: str,
                 *, by_id: bool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        domain = (await access.domain_by_id(conn, who, domain_ref) if by_id
                  else await access.domain_by_name(conn, who, str(domain_ref)))
        return await links.find_by_urls(conn, domain["id"], [url])
