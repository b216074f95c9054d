"""Password-protected links: the signed unlock cookie and the attempts limit.

The cookie value is ``{link_id}.{expires}.{mac}`` where ``mac`` is an HMAC-SHA256, under the
service secret, of the link id, the expiry and a digest of the link's stored password hash.
It never contains the password (nor its hash); changing the password changes the digest,
which invalidates every cookie issued for the old one.
"""

from __future__ import annotations

import hashlib
import hmac
from time import monotonic

COOKIE_PREFIX = "lh_unlock_"


def cookie_name(link_id: int) -> str:
    return f"{COOKIE_PREFIX}{link_id}"


def _mac(secret: bytes, link_id: int, expires: int, password_hash: str) -> str:
    fingerprint = hashlib.sha256(password_hash.encode()).hexdigest()
    message = f"{link_id}.{expires}.{fingerprint}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def make_token(secret: bytes, link_id: int, password_hash: str, expires: int) -> str:
    return f"{link_id}.{expires}.{_mac(secret, link_id, expires, password_hash)}"


def token_valid(
    secret: bytes, token: str | None, link_id: int, password_hash: str, now: float
) -> bool:
    if not token:
        return False
    try:
        id_part, expires_part, mac = token.split(".")
        token_link, expires = int(id_part), int(expires_part)
    except ValueError:
        return False
    if token_link != link_id or expires < now:
        return False
    return hmac.compare_digest(mac, _mac(secret, link_id, expires, password_hash))


class AttemptLimiter:
    """Fixed-window counter per (link, client), kept in process.

    Used when Redis (which shares the count between workers) cannot be reached, so an
    outage never turns into unlimited guessing."""

    def __init__(self, limit: int, window: float, maxsize: int = 100_000) -> None:
        self._limit = limit
        self._window = window
        self._maxsize = maxsize
        self._counts: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> int:
        now = monotonic()
        start, count = self._counts.get(key, (now, 0))
        if now - start > self._window:
            start, count = now, 0
        if len(self._counts) >= self._maxsize:
            self._counts.clear()
        self._counts[key] = (start, count + 1)
        return count + 1

    def allowed(self, count: int) -> bool:
        return count <= self._limit

    def exceeded(self, key: str) -> bool:
        """Whether one more hit of ``key`` in the current window would be over the limit
        (counts nothing)."""
        start, count = self._counts.get(key, (0.0, 0))
        return count >= self._limit and monotonic() - start <= self._window
