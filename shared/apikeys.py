"""API keys: generation, hashing, and the authenticated principal.

A key is ``sk_`` (private) or ``pk_`` (public) followed by 32 base62 characters from
``secrets`` (about 190 bits). Only its SHA-256 is stored: the key is random and long,
so a slow password hash would add latency without adding safety. The first
:data:`PREFIX_LENGTH` characters are stored in clear to find the row and to show in
listings; they are never enough to authenticate. The hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

KeyKind = Literal["private", "public"]

PREFIX_LENGTH = 11
KEY_LENGTH = 35
_ALPHABET = string.ascii_letters + string.digits
_KIND_PREFIX: dict[KeyKind, str] = {"private": "sk_", "public": "pk_"}


@dataclass(frozen=True)
class Principal:
    """Who is calling: one API key of one team, maybe restricted to one domain."""

    key_id: int
    team_id: int
    kind: KeyKind
    domain_id: int | None  # None: every domain of the team

    def may_use_domain(self, domain_id: int, team_id: int) -> bool:
        if team_id != self.team_id:
            return False
        return self.domain_id is None or self.domain_id == domain_id


@dataclass(frozen=True)
class StoredKey:
    id: int
    team_id: int
    prefix: str
    secret_hash: bytes
    kind: KeyKind
    domain_id: int | None
    expires_at: datetime | None
    revoked_at: datetime | None


def generate_key(kind: KeyKind) -> str:
    return _KIND_PREFIX[kind] + "".join(secrets.choice(_ALPHABET) for _ in range(32))


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def looks_like_key(key: str) -> bool:
    return (
        len(key) == KEY_LENGTH
        and key[:3] in _KIND_PREFIX.values()
        and all(c in _ALPHABET for c in key[3:])
    )


def key_from_header(value: str | None) -> str | None:
    """Short.io sends the raw key in ``Authorization``; ``Bearer <key>`` works too."""
    if not value:
        return None
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        value = rest.strip()
    return value or None


def matches(stored: StoredKey, presented: str, now: datetime) -> bool:
    if not hmac.compare_digest(stored.secret_hash, hash_key(presented)):
        return False
    if stored.revoked_at is not None:
        return False
    return stored.expires_at is None or stored.expires_at > now
