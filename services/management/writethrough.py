"""Rewrites links' compiled records in Redis after a change, in the same request.

Every change gives the row a new ``record_version`` (from ``record_version_seq``) in
the statement that makes it; the record is compiled from Postgres after the change
commits, so what Redis gets is always what Postgres holds at that version, and the
versioned write refuses anything older than what Redis already has. Removals (delete,
a path moved away) leave tombstones, so an older write cannot resurrect the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.linkrecord import RecordStore
from shared.record_repository import fetch_link_records_by_ids


async def publish_links(conn: Any, store: RecordStore, link_ids: Iterable[int]) -> None:
    """Compiles the links (one query) and writes them (one pipelined round trip)."""
    ids = list(dict.fromkeys(link_ids))
    if ids:
        await store.put_links(await fetch_link_records_by_ids(conn, ids))


async def publish_link(conn: Any, store: RecordStore, link_id: int) -> None:
    await publish_links(conn, store, [link_id])


async def tombstone_links(store: RecordStore, removed: Iterable[Any]) -> None:
    """Tombstones for rows of (id, domain_id, hostname, path_key, version)."""
    await store.delete_links([
        (r["hostname"], r["path_key"], r["id"], r["domain_id"], r["version"]) for r in removed
    ])
