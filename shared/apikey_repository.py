"""SQL for API keys (shared: management creates and checks keys, stats checks them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.apikeys import KeyKind, StoredKey, generate_key, hash_key, key_prefix

_COLUMNS = "id, team_id, prefix, secret_hash, kind, domain_id, expires_at, revoked_at"


def _stored(row: asyncpg.Record) -> StoredKey:
    return StoredKey(
        id=row["id"],
        team_id=row["team_id"],
        prefix=row["prefix"],
        secret_hash=bytes(row["secret_hash"]),
        kind=row["kind"],
        domain_id=row["domain_id"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


async def find_by_prefix(conn: Any, prefix: str) -> StoredKey | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE prefix = $1", prefix)
    return _stored(row) if row else None


async def create_key(
    conn: Any,
    *,
    team_id: int,
    kind: KeyKind,
    domain_id: int | None = None,
    description: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, asyncpg.Record]:
    """Creates a key; returns (the secret, shown once; the stored row)."""
    while True:
        secret = generate_key(kind)
        row = await conn.fetchrow(
            """INSERT INTO api_keys (team_id, prefix, secret_hash, kind, domain_id,
                                     description, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (prefix) DO NOTHING
               RETURNING id, team_id, prefix, kind, domain_id, description, expires_at,
                         revoked_at, created_at""",
            team_id, key_prefix(secret), hash_key(secret), kind, domain_id, description,
            expires_at,
        )
        if row is not None:  # a prefix collision (astronomically rare) just draws again
            return secret, row


async def list_keys(conn: Any, team_id: int) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT id, team_id, prefix, kind, domain_id, description, expires_at,
                      revoked_at, created_at
               FROM api_keys WHERE team_id = $1 ORDER BY id""",
            team_id,
        )
    )


async def revoke_key(conn: Any, team_id: int, key_id: int) -> bool:
    result: str = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND team_id = $2"
        " AND revoked_at IS NULL",
        key_id, team_id,
    )
    return result.endswith(" 1")
