"""Authenticating a request by its API key (management and stats share this)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from shared import apikey_repository
from shared.apikeys import (
    Principal,
    StoredKey,
    key_from_header,
    key_prefix,
    looks_like_key,
    matches,
)
from shared.errors import Unauthorized

# One message for every refusal, so a caller learns nothing about which keys exist.
_REFUSED = "Unauthorized: missing, invalid, revoked or expired API key"
_NO_SUCH_KEY = StoredKey(
    id=0, team_id=0, prefix="", secret_hash=bytes(32), kind="private", domain_id=None,
    expires_at=None, revoked_at=None,
)


async def authenticate(pool: asyncpg.Pool, authorization: str | None) -> Principal:
    key = key_from_header(authorization)
    if key is None or not looks_like_key(key):
        raise Unauthorized(_REFUSED)
    async with pool.acquire() as conn:
        stored = await apikey_repository.find_by_prefix(conn, key_prefix(key))
    if stored is None:
        # Same work as for a known prefix, so timing does not tell which prefixes exist.
        matches(_NO_SUCH_KEY, key, datetime.now(UTC))
        raise Unauthorized(_REFUSED)
    if not matches(stored, key, datetime.now(UTC)):
        raise Unauthorized(_REFUSED)
    return Principal(
        key_id=stored.id, team_id=stored.team_id, kind=stored.kind, domain_id=stored.domain_id
    )
