"""GET /api/links: keyset pagination over (created_at, id) with an opaque page token.

The token names the last link of the previous page (and the sort order); the next page
starts strictly after it, so pages stay stable while links are added and no OFFSET
scan grows with the page number. A tampered token can at worst move the window
within the domain the key may already list.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.management.links import access
from services.management.links import repository as links
from services.management.links.schemas import ListLinksQuery
from services.management.links.validation import parse_instant
from shared.apikeys import Principal
from shared.errors import BadRequest


@dataclass(frozen=True)
class Page:
    rows: list[asyncpg.Record]
    count: int
    next_token: str | None


def encode_token(created_at: datetime, link_id: int, order: str) -> str:
    raw = json.dumps({"t": created_at.isoformat(), "i": link_id, "o": order},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, order: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        created_at = datetime.fromisoformat(data["t"])
        link_id = int(data["i"])
        token_order = data["o"]
    except (ValueError, KeyError, TypeError):
        raise BadRequest("pageToken is not a token this API handed out") from None
    if token_order != order or created_at.tzinfo is None:
        raise BadRequest("pageToken belongs to a listing in another order")
    return created_at, link_id


def _instant(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value, field)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def list_page(pool: asyncpg.Pool, who: Principal, query: ListLinksQuery) -> Page:
    before = _instant(query.beforeDate, "beforeDate")
    after = _instant(query.afterDate, "afterDate")
    created_at = _instant(query.createdAt, "createdAt")
    descending = query.dateSortOrder == "desc"
    cursor = decode_token(query.pageToken, query.dateSortOrder) if query.pageToken else None
    async with pool.acquire() as conn:
        domain = await access.domain_by_id(conn, who, query.domain_id)
        folder_id: int | None = None
        if query.folderId is not None:
            found = await links.folder_ids(conn, domain["id"], [query.folderId])
            if query.folderId not in found:
                raise BadRequest("folderId: no such folder on this domain")
            folder_id = found[query.folderId]
        where = links.ListFilter(folder_id=folder_id, before=before, after=after,
                                 id_string=query.idString, created_at=created_at)
        rows = await links.list_links(conn, domain_id=domain["id"], where=where,
                                      cursor=cursor, descending=descending,
                                      limit=query.limit + 1)
        count = await links.count_links(conn, domain_id=domain["id"], where=where)
    token = None
    if len(rows) > query.limit:
        rows = rows[:query.limit]
        token = encode_token(rows[-1]["created_at"], rows[-1]["id"], query.dateSortOrder)
    return Page(rows=rows, count=count, next_token=token)
