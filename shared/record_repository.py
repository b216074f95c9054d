"""SQL that compiles Postgres rows into the records the redirect edge reads.

Used by the management service after each change, by the redirect service when Redis
has lost a record, and by ``linkhop cache rebuild``. All of it is read-only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from shared.linkrecord import DomainRecord, LinkRecord

_DOMAIN_SQL = """
SELECT id, hostname, record_version, case_sensitive, hide_referer, hide_visitor_ip,
       robots, redirect_type, root_redirect, not_found_redirect
FROM domains WHERE {where}
"""

_LINK_SQL = """
SELECT l.id, l.id_string, l.domain_id, l.path, l.path_key, l.original_url, l.redirect_type,
       l.title, l.archived, extract(epoch FROM l.expires_at)::float8 AS expires_epoch,
       l.expired_url, l.clicks_limit, l.password_hash, l.iphone_url, l.android_url,
       l.split_url, l.split_percent, l.utm_source, l.utm_medium, l.utm_campaign, l.utm_term,
       l.utm_content, l.skip_qs, l.cloaking, l.record_version, d.hostname,
       COALESCE((SELECT jsonb_object_agg(c.country, c.original_url)
                 FROM link_countries c WHERE c.link_id = l.id), '{{}}'::jsonb)::text AS countries,
       COALESCE((SELECT jsonb_object_agg(r.region, r.original_url)
                 FROM link_regions r WHERE r.link_id = l.id), '{{}}'::jsonb)::text AS regions
FROM links l JOIN domains d ON d.id = l.domain_id
WHERE {where}
"""


def domain_record_from_row(row: asyncpg.Record) -> DomainRecord:
    return DomainRecord(
        version=row["record_version"],
        domain_id=row["id"],
        hostname=row["hostname"],
        case_sensitive=row["case_sensitive"],
        hide_referer=row["hide_referer"],
        hide_visitor_ip=row["hide_visitor_ip"],
        robots=row["robots"],
        redirect_type=row["redirect_type"],
        root_redirect=row["root_redirect"],
        not_found_redirect=row["not_found_redirect"],
    )


def link_record_from_row(row: asyncpg.Record) -> LinkRecord:
    utm = {
        name: row[name]
        for name in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
        if row[name]
    }
    return LinkRecord(
        version=row["record_version"],
        link_id=row["id"],
        id_string=row["id_string"],
        domain_id=row["domain_id"],
        path=row["path"],
        url=row["original_url"],
        redirect_type=row["redirect_type"],
        title=row["title"],
        archived=row["archived"],
        expires_at=row["expires_epoch"],
        expired_url=row["expired_url"],
        clicks_limit=row["clicks_limit"],
        password_hash=row["password_hash"],
        iphone_url=row["iphone_url"],
        android_url=row["android_url"],
        countries=json.loads(row["countries"]),
        regions=json.loads(row["regions"]),
        split_url=row["split_url"],
        split_percent=row["split_percent"],
        utm=utm,
        skip_qs=row["skip_qs"],
        cloaking=row["cloaking"],
    )


async def fetch_domain_record(conn: Any, hostname: str) -> DomainRecord | None:
    row = await conn.fetchrow(_DOMAIN_SQL.format(where="hostname = $1"), hostname)
    return domain_record_from_row(row) if row else None


async def fetch_link_record(conn: Any, domain_id: int, path_key: str) -> LinkRecord | None:
    row = await conn.fetchrow(
        _LINK_SQL.format(where="l.domain_id = $1 AND l.path_key = $2"), domain_id, path_key
    )
    return link_record_from_row(row) if row else None


async def fetch_link_record_by_id(conn: Any, link_id: int) -> tuple[str, str, LinkRecord] | None:
    """(hostname, path_key, record) of one link, for write-through after a change."""
    row = await conn.fetchrow(_LINK_SQL.format(where="l.id = $1"), link_id)
    if row is None:
        return None
    return row["hostname"], row["path_key"], link_record_from_row(row)


async def fetch_link_records_by_ids(
    conn: Any, link_ids: list[int]
) -> list[tuple[str, str, LinkRecord]]:
    """(hostname, path_key, record) of many links in one query (bulk write-through)."""
    rows = await conn.fetch(_LINK_SQL.format(where="l.id = ANY($1::bigint[])"), link_ids)
    return [(r["hostname"], r["path_key"], link_record_from_row(r)) for r in rows]


async def iter_all_records(
    conn: asyncpg.Connection,
) -> AsyncIterator[tuple[str, str, LinkRecord]]:
    """Every link record, streamed with a cursor (``linkhop cache rebuild``)."""
    async with conn.transaction(readonly=True):
        async for row in conn.cursor(_LINK_SQL.format(where="true")):
            yield row["hostname"], row["path_key"], link_record_from_row(row)


async def iter_all_domains(conn: asyncpg.Connection) -> list[DomainRecord]:
    rows = await conn.fetch(_DOMAIN_SQL.format(where="true"))
    return [domain_record_from_row(r) for r in rows]
