"""Authenticating a request by its API key (management and stats share this)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from shared import apikey_repository
from shared.apikeys import Principal, key_from_header, key_prefix, looks_like_key, matches
from shared.errors import Unauthorized

# One message for every refusal, so a caller learns nothing about which keys exist.
_REFUSED = "Unauthorized: missing, invalid, revoked or expired API key"


async def authenticate(pool: asyncpg.Pool, authorization: str | None) -> Principal:
    key = key_from_header(authorization)
    if key is None or not looks_like_key(key):
        raise Unauthorized(_REFUSED)
    async with pool.acquire() as conn:
        stored = await apikey_repository.find_by_prefix(conn, key_prefix(key))
    if stored is None or not matches(stored, key, datetime.now(UTC)):
        raise Unauthorized(_REFUSED)
    return Principal(
        key_id=stored.id, team_id=stored.team_id, kind=stored.kind, domain_id=stored.domain_id
    )
