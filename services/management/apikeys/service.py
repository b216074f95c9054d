"""API key use cases: create (the secret is returned once), list, revoke."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.management.apikeys.schemas import ApiKey, CreatedKey, CreateKeyRequest
from services.management.domains import repository as domains
from shared import apikey_repository
from shared.apikeys import Principal
from shared.errors import NotFound


def _key(row: asyncpg.Record, now: datetime) -> dict[str, Any]:
    if row["revoked_at"] is not None:
        state = "revoked"
    elif row["expires_at"] is not None and row["expires_at"] <= now:
        state = "expired"
    else:
        state = "active"
    return {
        "id": row["id"], "prefix": row["prefix"], "kind": row["kind"],
        "domainId": row["domain_id"], "description": row["description"],
        "expiresAt": row["expires_at"], "revokedAt": row["revoked_at"],
        "createdAt": row["created_at"], "state": state,
    }


async def create_key(pool: asyncpg.Pool, who: Principal, request: CreateKeyRequest
                     ) -> CreatedKey:
    async with pool.acquire() as conn:
        if request.domainId is not None:
            domain = await domains.get_by_id(conn, request.domainId)
            if domain is None or domain["team_id"] != who.team_id:
                raise NotFound("Domain not found")
        secret, row = await apikey_repository.create_key(
            conn, team_id=who.team_id, kind=request.kind, domain_id=request.domainId,
            description=request.description, expires_at=request.expiresAt,
        )
    return CreatedKey(key=secret, **_key(row, datetime.now(UTC)))


async def list_keys(pool: asyncpg.Pool, who: Principal) -> list[ApiKey]:
    async with pool.acquire() as conn:
        rows = await apikey_repository.list_keys(conn, who.team_id)
    now = datetime.now(UTC)
    return [ApiKey(**_key(row, now)) for row in rows]


async def revoke_key(pool: asyncpg.Pool, who: Principal, key_id: int) -> None:
    async with pool.acquire() as conn:
        if not await apikey_repository.revoke_key(conn, who.team_id, key_id):
            raise NotFound("API key not found (or already revoked)")
