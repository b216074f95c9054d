"""Makes Redis hold what Postgres committed: compiled link and domain records, and
tombstones for removed keys, through a transactional outbox.

A change queues what it affects (:func:`queue`) in its own transaction, so the outbox
rows exist exactly when the change does. After the commit the request writes them
itself (:func:`deliver`), so the edge sees the change at once, and deletes the rows.
When Redis (or Postgres, after the commit) fails at that moment, or the process dies
before it, the rows stay and :func:`drain` writes them as soon as Redis answers again
(the management service runs it every ``outbox_interval``). The caller's answer is
therefore success whenever the change committed: it is saved, and Redis follows.

Every change gives the row a new ``record_version``, and records are compiled from
Postgres at write time, so a late or repeated write is never older than what Postgres
holds, and the versioned write script refuses anything older than what Redis has.
Removals leave tombstones, so an older write cannot resurrect the key.

Order of one delivery: link records first, then domain records, then tombstones, so
that when a domain's keys change (caseSensitive), the new keys exist before the old
ones are removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from services.management import outbox_repository as outbox
from services.management.domains import repository as domains
from services.management.settings import Settings
from shared.errors import DB_OUTAGES, REDIS_OUTAGES
from shared.linkrecord import RecordStore
from shared.record_repository import domain_record_from_row, fetch_link_records_by_ids
from shared.resources import DB_POOL, REDIS
from shared.tasks import CleanupCtx, periodic_task_ctx

log = logging.getLogger(__name__)

# Links compiled and written per round trip (a domain re-key touches all its links).
_CHUNK = 1000

# (hostname, path_key, link_id, domain_id, tombstone version)
Tombstone = tuple[str, str, int, int, int]


@dataclass
class Changes:
    """What a committed change must make true in Redis."""

    link_ids: list[int] = field(default_factory=list)
    domain_ids: list[int] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)


@dataclass
class Queued:
    changes: Changes
    outbox_ids: list[int]


def tombstones_of(removed: Iterable[Any]) -> list[Tombstone]:
    """Tombstones for rows of (id, domain_id, hostname, path_key, version)."""
    return [(r["hostname"], r["path_key"], r["id"], r["domain_id"], r["version"])
            for r in removed]


async def queue(conn: Any, changes: Changes) -> Queued:
    """Records ``changes`` in the outbox; call inside the change's transaction."""
    ids = await outbox.insert(conn, link_ids=changes.link_ids,
                              domain_ids=changes.domain_ids, tombstones=changes.tombstones)
    return Queued(changes, ids)


async def deliver(conn: Any, redis: aioredis.Redis, queued: Queued) -> bool:
    """After the commit: writes the records and clears their outbox rows. On an outage
    the rows stay for :func:`drain` and the change still counts as done (False)."""
    if not queued.outbox_ids:
        return True
    try:
        await _write(conn, RecordStore(redis), queued.changes)
        await outbox.delete(conn, queued.outbox_ids)
    except (*REDIS_OUTAGES, *DB_OUTAGES) as exc:
        log.warning("write-through deferred to the outbox drainer: %r", exc)
        return False
    return True


async def drain(pool: asyncpg.Pool, redis: aioredis.Redis, *, older_than: timedelta,
                limit: int = _CHUNK) -> int:
    """Writes the oldest outbox rows (queued more than ``older_than`` ago: younger ones
    belong to requests still delivering) and deletes them in the same transaction, so
    a failure leaves them for the next round. Returns how many were written."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await outbox.claim(conn, older_than=older_than, limit=limit)
        if not rows:
            return 0
        changes = Changes()
        for row in rows:
            if row["hostname"] is not None:
                changes.tombstones.append((row["hostname"], row["path_key"], row["link_id"],
                                           row["domain_id"], row["version"]))
            elif row["link_id"] is not None:
                changes.link_ids.append(row["link_id"])
            else:
                changes.domain_ids.append(row["domain_id"])
        await _write(conn, RecordStore(redis), changes)
        await outbox.delete(conn, [row["id"] for row in rows])
    return len(rows)


async def _write(conn: Any, store: RecordStore, changes: Changes) -> None:
    link_ids = list(dict.fromkeys(changes.link_ids))
    for start in range(0, len(link_ids), _CHUNK):
        # A link deleted since it was queued compiles to nothing: its tombstone is queued.
        await store.put_links(await fetch_link_records_by_ids(conn, link_ids[start:start + _CHUNK]))
    for domain_id in dict.fromkeys(changes.domain_ids):
        row = await domains.get_by_id(conn, domain_id)
        if row is not None:
            await store.put_domain(domain_record_from_row(row))
    for start in range(0, len(changes.tombstones), _CHUNK):
        await store.delete_links(changes.tombstones[start:start + _CHUNK])


def outbox_drainer_ctx(settings: Settings) -> CleanupCtx:
    """Drains the outbox every ``outbox_interval`` for the app's whole life; while Redis
    or Postgres is away the rows stay for the next round."""

    async def step(app: web.Application) -> bool:
        # Something drained: there may be more.
        return bool(await drain(app[DB_POOL], app[REDIS], older_than=settings.outbox_min_age))

    return periodic_task_ctx("outbox-drainer", settings.outbox_interval, step, log,
                             quiet=(*REDIS_OUTAGES, *DB_OUTAGES))
