"""SQL for links (and their folders)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

LINK_COLUMNS: Final = """l.id, l.id_string, l.domain_id, l.team_id, l.owner_key_id, l.folder_id,
    f.id_string AS folder_id_string, l.path, l.path_key, l.original_url, l.title, l.tags,
    l.expires_at, l.expired_url, (l.password_hash IS NOT NULL) AS has_password,
    l.redirect_type, l.clicks_limit, l.android_url, l.iphone_url, l.split_url, l.split_percent,
    l.utm_source, l.utm_medium, l.utm_campaign, l.utm_term, l.utm_content, l.skip_qs,
    l.cloaking, l.archived, l.source, l.ttl, l.record_version, l.created_at, l.updated_at,
    d.hostname"""
_FROM: Final = """links l JOIN domains d ON d.id = l.domain_id
    LEFT JOIN folders f ON f.id = l.folder_id"""

# Columns a create or an update may set, in insert order (id_string .. ttl).
_INSERT_COLUMNS: Final = (
    ("id_string", "text"), ("domain_id", "bigint"), ("team_id", "bigint"),
    ("owner_key_id", "bigint"), ("folder_id", "bigint"), ("path", "text"),
    ("path_key", "text"), ("original_url", "text"), ("title", "text"), ("tags", "text"),
    ("expires_at", "timestamptz"), ("expired_url", "text"), ("password_hash", "text"),
    ("redirect_type", "smallint"), ("clicks_limit", "integer"), ("android_url", "text"),
    ("iphone_url", "text"), ("split_url", "text"), ("split_percent", "smallint"),
    ("utm_source", "text"), ("utm_medium", "text"), ("utm_campaign", "text"),
    ("utm_term", "text"), ("utm_content", "text"), ("skip_qs", "boolean"),
    ("cloaking", "boolean"), ("archived", "boolean"), ("source", "text"),
    ("ttl", "timestamptz"),
)
UPDATABLE: Final = frozenset(name for name, _ in _INSERT_COLUMNS) - {
    "id_string", "domain_id", "team_id", "owner_key_id", "source"}


def _select_list() -> str:
    # tags travel as one JSON text per row: unnest() would flatten a 2-D array.
    return ", ".join(
        "ARRAY(SELECT jsonb_array_elements_text(tags::jsonb))" if name == "tags" else name
        for name, _ in _INSERT_COLUMNS
    )


_INSERT_SQL: Final = f"""
WITH l AS (
    INSERT INTO links ({", ".join(name for name, _ in _INSERT_COLUMNS)})
    SELECT {_select_list()}
    FROM unnest({", ".join(f"${i}::{kind}[]" for i, (_, kind) in
                           enumerate(_INSERT_COLUMNS, start=1))})
         AS t({", ".join(name for name, _ in _INSERT_COLUMNS)})
    ON CONFLICT DO NOTHING
    RETURNING *)
SELECT {LINK_COLUMNS} FROM l JOIN domains d ON d.id = l.domain_id
    LEFT JOIN folders f ON f.id = l.folder_id
"""


@dataclass
class NewLink:
    """One row to insert; every value already validated."""

    id_string: str
    domain_id: int
    team_id: int
    owner_key_id: int | None
    path: str
    path_key: str
    original_url: str
    folder_id: int | None = None
    title: str | None = None
    tags: list[str] | None = None
    expires_at: datetime | None = None
    expired_url: str | None = None
    password_hash: str | None = None
    redirect_type: int | None = None
    clicks_limit: int | None = None
    android_url: str | None = None
    iphone_url: str | None = None
    split_url: str | None = None
    split_percent: int | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    skip_qs: bool = False
    cloaking: bool = False
    archived: bool = False
    source: str = "api"
    ttl: datetime | None = None


async def insert_links(conn: Any, rows: list[NewLink]) -> list[asyncpg.Record]:
    """One multi-row INSERT; rows whose path (or id) is taken are skipped, not returned."""
    columns: list[list[Any]] = []
    for name, _ in _INSERT_COLUMNS:
        if name == "tags":
            columns.append([json.dumps(r.tags or []) for r in rows])
        else:
            columns.append([getattr(r, name) for r in rows])
    result: list[asyncpg.Record] = await conn.fetch(_INSERT_SQL, *columns)
    return result


async def reserve_increments(conn: Any, domain_id: int, count: int) -> int:
    """Advances the domain's counter by ``count``; the first of the reserved numbers."""
    last: int = await conn.fetchval(
        "UPDATE domains SET increment_counter = increment_counter + $2 WHERE id = $1"
        " RETURNING increment_counter",
        domain_id, count,
    )
    return last - count + 1


async def own_hostnames(conn: Any, hostnames: list[str]) -> set[str]:
    """Those of ``hostnames`` that are linkhop domains (a link there would loop)."""
    if not hostnames:
        return set()
    rows = await conn.fetch("SELECT hostname FROM domains WHERE hostname = ANY($1::text[])",
                            hostnames)
    return {r["hostname"] for r in rows}


async def get_link(conn: Any, id_string: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {LINK_COLUMNS} FROM {_FROM} WHERE l.id_string = $1", id_string)
    return row


async def get_link_for_update(conn: Any, id_string: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {LINK_COLUMNS}, l.password_hash FROM {_FROM} WHERE l.id_string = $1"
        " FOR UPDATE OF l", id_string)
    return row


async def get_links(conn: Any, id_strings: list[str]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {LINK_COLUMNS} FROM {_FROM} WHERE l.id_string = ANY($1::text[])", id_strings)
    return rows


async def get_links_by_ids(conn: Any, ids: list[int]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {LINK_COLUMNS} FROM {_FROM} WHERE l.id = ANY($1::bigint[])", ids)
    return rows


async def get_by_path_key(conn: Any, domain_id: int, path_key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {LINK_COLUMNS} FROM {_FROM} WHERE l.domain_id = $1 AND l.path_key = $2",
        domain_id, path_key)
    return row


# Above this many destinations a create locks its whole domain instead of each
# destination: Postgres's lock table is small (max_locks_per_transaction, 64 per
# connection by default), and a bulk create of 1000 links must not exhaust it.
_DESTINATION_LOCKS_MAX = 32


async def lock_destinations(conn: Any, domain_id: int, urls: list[str]) -> None:
    """Transaction-scoped advisory locks, so that a concurrent create of the same
    destination waits, then finds this transaction's link instead of adding another.

    A few destinations: the domain's key shared, then each destination's key in one
    sorted order (no deadlock between two creates). Many: the domain's key exclusive,
    which waits for every create on the domain and makes them wait.
    """
    if len(urls) > _DESTINATION_LOCKS_MAX:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
                           str(domain_id))
        return
    await conn.execute("SELECT pg_advisory_xact_lock_shared(hashtextextended($1::text, 0))",
                       str(domain_id))
    await conn.execute(
        """SELECT pg_advisory_xact_lock(k) FROM (
               SELECT DISTINCT hashtextextended($1::text || ' ' || u, 0) AS k
               FROM unnest($2::text[]) AS u ORDER BY k) AS keys""",
        str(domain_id), urls)


async def find_by_urls(conn: Any, domain_id: int, urls: list[str]) -> list[asyncpg.Record]:
    """Links of the domain whose destination is one of ``urls``, oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {LINK_COLUMNS} FROM {_FROM}
            WHERE l.domain_id = $1 AND md5(l.original_url) = ANY(
                    ARRAY(SELECT md5(u) FROM unnest($2::text[]) AS u))
              AND l.original_url = ANY($2::text[])
            ORDER BY l.id""",
        domain_id, urls)
    return rows


async def update_link(conn: Any, link_id: int, values: dict[str, Any]) -> asyncpg.Record:
    """Sets ``values`` (column -> value) and a new record version, in one UPDATE."""
    unknown = set(values) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = list(values)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    sets = f"{assignments}, " if assignments else ""
    row: asyncpg.Record = await conn.fetchrow(
        f"""WITH l AS (
              UPDATE links SET {sets}record_version = nextval('record_version_seq'),
                     updated_at = now()
              WHERE id = $1 RETURNING *)
            SELECT {LINK_COLUMNS} FROM l JOIN domains d ON d.id = l.domain_id
                LEFT JOIN folders f ON f.id = l.folder_id""",
        link_id, *(values[n] for n in names))
    return row


async def next_version(conn: Any) -> int:
    version: int = await conn.fetchval("SELECT nextval('record_version_seq')")
    return version


async def bump_versions(conn: Any, ids: list[int], *, archived: bool | None = None,
                        add_tag: str | None = None) -> list[int]:
    """New record versions for ``ids`` (optionally archiving or tagging them)."""
    rows = await conn.fetch(
        """UPDATE links SET record_version = nextval('record_version_seq'), updated_at = now(),
                  archived = COALESCE($2, archived),
                  tags = CASE WHEN $3::text IS NULL OR $3 = ANY(tags) THEN tags
                              ELSE array_append(tags, $3) END
           WHERE id = ANY($1::bigint[]) RETURNING id""",
        ids, archived, add_tag)
    return [r["id"] for r in rows]


async def delete_links(conn: Any, ids: list[int]) -> list[asyncpg.Record]:
    """Deletes; each row's (id, domain_id, hostname, path_key, tombstone version)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """WITH gone AS (DELETE FROM links WHERE id = ANY($1::bigint[])
                         RETURNING id, domain_id, path_key)
           SELECT g.id, g.domain_id, g.path_key, d.hostname,
                  nextval('record_version_seq') AS version
           FROM gone g JOIN domains d ON d.id = g.domain_id""",
        ids)
    return rows


@dataclass(frozen=True)
class ListFilter:
    """What a listing of a domain's links is narrowed to (GET /api/links); None: any."""

    folder_id: int | None = None
    before: datetime | None = None  # created strictly before
    after: datetime | None = None  # created strictly after
    id_string: str | None = None  # the one link with this idString
    created_at: datetime | None = None  # created at exactly this instant


# One WHERE clause for the page and for its count, so they can never disagree.
_FILTER_SQL: Final = """l.domain_id = $1
  AND ($2::bigint IS NULL OR l.folder_id = $2)
  AND ($3::timestamptz IS NULL OR l.created_at < $3)
  AND ($4::timestamptz IS NULL OR l.created_at > $4)
  AND ($5::text IS NULL OR l.id_string = $5)
  AND ($6::timestamptz IS NULL OR l.created_at = $6)"""

_LIST_SQL: Final = """SELECT {cols} FROM {src}
WHERE {where}
  AND ($7::timestamptz IS NULL OR (l.created_at, l.id) {cmp} ($7, $8::bigint))
ORDER BY l.created_at {order}, l.id {order}
LIMIT $9"""


def _filter_args(domain_id: int, where: ListFilter) -> tuple[Any, ...]:
    return (domain_id, where.folder_id, where.before, where.after, where.id_string,
            where.created_at)


async def list_links(
    conn: Any, *, domain_id: int, where: ListFilter, cursor: tuple[datetime, int] | None,
    descending: bool, limit: int,
) -> list[asyncpg.Record]:
    """One page in (created_at, id) order after ``cursor`` (keyset, no OFFSET)."""
    sql = _LIST_SQL.format(cols=LINK_COLUMNS, src=_FROM, where=_FILTER_SQL,
                           cmp="<" if descending else ">",
                           order="DESC" if descending else "ASC")
    rows: list[asyncpg.Record] = await conn.fetch(
        sql, *_filter_args(domain_id, where),
        cursor[0] if cursor else None, cursor[1] if cursor else None, limit)
    return rows


async def count_links(conn: Any, *, domain_id: int, where: ListFilter) -> int:
    count: int = await conn.fetchval(f"SELECT count(*) FROM links l WHERE {_FILTER_SQL}",
                                     *_filter_args(domain_id, where))
    return count


async def copy_targeting(conn: Any, source_id: int, target_id: int) -> None:
    await conn.execute(
        """INSERT INTO link_countries (link_id, country, original_url)
           SELECT $2, country, original_url FROM link_countries WHERE link_id = $1""",
        source_id, target_id)
    await conn.execute(
        """INSERT INTO link_regions (link_id, country, region, original_url)
           SELECT $2, country, region, original_url FROM link_regions WHERE link_id = $1""",
        source_id, target_id)


# Folders ---------------------------------------------------------------------------

FOLDER_COLUMNS: Final = "id, id_string, domain_id, name, created_at"


async def insert_folder(conn: Any, id_string: str, domain_id: int, name: str) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"INSERT INTO folders (id_string, domain_id, name) VALUES ($1, $2, $3)"
        f" RETURNING {FOLDER_COLUMNS}", id_string, domain_id, name)
    return row


async def list_folders(conn: Any, domain_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {FOLDER_COLUMNS} FROM folders WHERE domain_id = $1 ORDER BY id", domain_id)
    return rows


async def get_folder(conn: Any, domain_id: int, id_string: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {FOLDER_COLUMNS} FROM folders WHERE domain_id = $1 AND id_string = $2",
        domain_id, id_string)
    return row


async def folder_ids(conn: Any, domain_id: int, id_strings: list[str]) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT id, id_string FROM folders WHERE domain_id = $1 AND id_string = ANY($2::text[])",
        domain_id, id_strings)
    return {r["id_string"]: r["id"] for r in rows}


async def lock_expired_ttl(conn: Any, limit: int) -> list[int]:
    """Ids of links past their ttl, row-locked; SKIP LOCKED lets replicas sweep together."""
    rows = await conn.fetch(
        """SELECT id FROM links WHERE ttl IS NOT NULL AND ttl <= now()
           ORDER BY ttl LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit)
    return [r["id"] for r in rows]
