"""Rewrites a link's compiled record in Redis after a change (same request)."""

from __future__ import annotations

from typing import Any

from shared.linkrecord import RecordStore
from shared.record_repository import fetch_link_record_by_id


async def publish_link(conn: Any, store: RecordStore, link_id: int) -> None:
    compiled = await fetch_link_record_by_id(conn, link_id)
    if compiled is not None:
        hostname, path_key, record = compiled
        await store.put_link(hostname, path_key, record)
