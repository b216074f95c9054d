"""Creating links, one or a thousand, in a handful of round trips.

Single create, public create and bulk create all go through :func:`create_links`:
items are validated in Python first (a bad item fails alone), then the database is
asked once for each of: the domain, the folders, destinations that are linkhop's own
domains (a loop), existing links with the same destination (``allowDuplicates``), the
multi-row INSERT (``ON CONFLICT DO NOTHING``), and the compiled records; Redis gets
ONE pipelined write. Only generated paths that collided are retried.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from services.management.links import access
from services.management.links import repository as links
from services.management.links.repository import NewLink
from services.management.links.schemas import LinkItem
from services.management.links.slugs import base36, new_id_string, slug_for
from services.management.links.validation import destination_host, is_reserved
from services.management.writethrough import Changes, deliver, queue
from shared.apikeys import Principal
from shared.errors import ApiError, BadRequest, Conflict, NotFound, ServiceUnavailable
from shared.linkrecord import path_key_for
from shared.passwords import hash_password

PATH_TAKEN = "Link with this path already exists"
LOOP = "a link may not point at a linkhop domain (it would redirect in a loop)"
_ROUNDS = 8  # generated-path collision retries; each round retries only the collided


@dataclass
class Outcome:
    row: asyncpg.Record | None = None
    duplicate: bool = False
    error: ApiError | None = None


@dataclass
class _Draft:
    index: int
    link: NewLink
    generated: bool


def destinations(item: LinkItem) -> list[str]:
    return [u for u in (item.originalURL, item.expiredURL, item.androidURL, item.iphoneURL,
                        item.splitURL) if u]


async def create_links(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    who: Principal,
    domain_name: str,
    items: list[LinkItem | ApiError],
    *,
    allow_duplicates: bool = False,
    folder_id: str | None = None,
    source: str = "api",
) -> list[Outcome]:
    """One outcome per item, in input order."""
    outcomes: list[Outcome] = [
        Outcome(error=item) if isinstance(item, ApiError) else Outcome() for item in items]
    pending = {i: item for i, item in enumerate(items) if isinstance(item, LinkItem)}
    async with pool.acquire() as conn:
        domain = await access.domain_by_name(conn, who, domain_name)
        folders = await _folders(conn, domain["id"], pending, folder_id)
        own = await links.own_hostnames(conn, sorted({
            destination_host(u) for item in pending.values() for u in destinations(item)}))
        # Slow (scrypt), so before the transaction: its locks are held for milliseconds.
        passwords = await _hash_passwords(pending)
        # One transaction from the duplicate check to the outbox rows: the check locks
        # the destinations it looks up, so two identical creates cannot both miss.
        async with conn.transaction():
            followers = await _plan(conn, domain, pending, outcomes, folders, folder_id, own,
                                    allow_duplicates)
            drafts = [
                _draft(i, item, domain, who, folders.get(item.folderId or folder_id or ""),
                       passwords.get(i), source)
                for i, item in pending.items()
            ]
            await _fill_increments(conn, domain, drafts)
            created = await _insert(conn, domain, drafts, outcomes)
            queued = await queue(conn, Changes(link_ids=created))
        for index, leader in followers.items():
            outcomes[index] = Outcome(row=outcomes[leader].row, duplicate=True,
                                      error=outcomes[leader].error)
        await deliver(conn, redis, queued)
    return outcomes


async def _folders(conn: Any, domain_id: int, pending: dict[int, LinkItem],
                   folder_id: str | None) -> dict[str, int]:
    wanted = {item.folderId or folder_id for item in pending.values()} - {None}
    return await links.folder_ids(conn, domain_id, sorted(w for w in wanted if w))


async def _plan(
    conn: Any, domain: asyncpg.Record, pending: dict[int, LinkItem], outcomes: list[Outcome],
    folders: dict[str, int], folder_id: str | None, own: set[str], allow_duplicates: bool,
) -> dict[int, int]:
    """Refuses what cannot be created, answers reused links; returns follower -> leader
    for items that repeat an earlier item's destination within this request."""
    case_sensitive: bool = domain["case_sensitive"]
    seen_paths: set[str] = set()
    first_with_url: dict[str, int] = {}
    followers: dict[int, int] = {}
    reuse: dict[int, str] = {}
    for index, item in list(pending.items()):
        error: ApiError | None = None
        wanted_folder = item.folderId or folder_id
        if any(destination_host(u) in own for u in destinations(item)):
            error = BadRequest(LOOP)
        elif wanted_folder and wanted_folder not in folders:
            error = NotFound("Folder not found")
        elif item.path is not None:
            key = path_key_for(item.path, case_sensitive)
            if key in seen_paths:
                error = Conflict(PATH_TAKEN)
            seen_paths.add(key)
        elif not (allow_duplicates if item.allowDuplicates is None else item.allowDuplicates):
            if item.originalURL in first_with_url:
                followers[index] = first_with_url[item.originalURL]
                del pending[index]
                continue
            first_with_url[item.originalURL] = index
            reuse[index] = item.originalURL
        if error is not None:
            outcomes[index] = Outcome(error=error)
            del pending[index]
    if reuse:
        urls = sorted(set(reuse.values()))
        await links.lock_destinations(conn, domain["id"], urls)
        existing: dict[str, asyncpg.Record] = {}
        for row in await links.find_by_urls(conn, domain["id"], urls):
            existing.setdefault(row["original_url"], row)
        for index, url in reuse.items():
            if url in existing:
                outcomes[index] = Outcome(row=existing[url], duplicate=True)
                del pending[index]
    return followers


async def _hash_passwords(pending: dict[int, LinkItem]) -> dict[int, str]:
    plain = {i: item.password for i, item in pending.items() if item.password}
    if not plain:
        return {}
    # scrypt is deliberately slow: off the event loop.
    hashed = await asyncio.to_thread(lambda: {i: hash_password(p) for i, p in plain.items()})
    return hashed


def _draft(index: int, item: LinkItem, domain: asyncpg.Record, who: Principal,
           folder: int | None, password_hash: str | None, source: str) -> _Draft:
    path = item.path or ""
    return _Draft(index=index, generated=item.path is None, link=NewLink(
        id_string=new_id_string(), domain_id=domain["id"], team_id=domain["team_id"],
        owner_key_id=who.key_id, path=path,
        path_key=path_key_for(path, domain["case_sensitive"]),
        original_url=item.originalURL, folder_id=folder, title=item.title, tags=item.tags,
        expires_at=item.expiresAt, expired_url=item.expiredURL, password_hash=password_hash,
        redirect_type=item.redirectType, clicks_limit=item.clicksLimit,
        android_url=item.androidURL, iphone_url=item.iphoneURL, split_url=item.splitURL,
        split_percent=item.splitPercent, utm_source=item.utmSource, utm_medium=item.utmMedium,
        utm_campaign=item.utmCampaign, utm_term=item.utmTerm, utm_content=item.utmContent,
        skip_qs=bool(item.skipQS), cloaking=bool(item.cloaking), archived=bool(item.archived),
        source=source, ttl=item.ttl,
    ))


def _set_path(draft: _Draft, path: str, case_sensitive: bool) -> None:
    draft.link.path = path
    draft.link.path_key = path_key_for(path, case_sensitive)


async def _fill_increments(conn: Any, domain: asyncpg.Record, drafts: list[_Draft]) -> None:
    """Generated paths for ``drafts`` that need one (the domain's linkType decides)."""
    todo = [d for d in drafts if d.generated]
    if not todo:
        return
    case_sensitive: bool = domain["case_sensitive"]
    if domain["link_type"] != "increment":
        for draft in todo:
            _set_path(draft, slug_for(domain["link_type"], case_sensitive=case_sensitive),
                      case_sensitive)
        return
    slugs: list[str] = []
    while len(slugs) < len(todo):
        missing = len(todo) - len(slugs)
        first = await links.reserve_increments(conn, domain["id"], missing)
        slugs.extend(s for s in (base36(n) for n in range(first, first + missing))
                     if not is_reserved(s))
    for draft, slug in zip(todo, slugs, strict=True):
        _set_path(draft, slug, case_sensitive)


async def _insert(conn: Any, domain: asyncpg.Record, drafts: list[_Draft],
                  outcomes: list[Outcome]) -> list[int]:
    """Inserts; explicit paths that are taken fail, generated ones are drawn again."""
    created: list[int] = []
    for _ in range(_ROUNDS):
        if not drafts:
            return created
        rows = await links.insert_links(conn, [d.link for d in drafts])
        by_id = {r["id_string"]: r for r in rows}
        retry: list[_Draft] = []
        for draft in drafts:
            row = by_id.get(draft.link.id_string)
            if row is not None:
                outcomes[draft.index] = Outcome(row=row)
                created.append(row["id"])
            elif draft.generated:
                draft.link.id_string = new_id_string()
                retry.append(draft)
            else:
                outcomes[draft.index] = Outcome(error=Conflict(PATH_TAKEN))
        await _fill_increments(conn, domain, retry)
        drafts = retry
    for draft in drafts:
        outcomes[draft.index] = Outcome(
            error=ServiceUnavailable("could not allocate a free path, try again"))
    return created
