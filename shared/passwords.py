"""Link passwords: stored only as a slow, salted scrypt hash.

The management service hashes; the redirect edge verifies what a visitor typed with
:func:`verify_password`. The encoding carries its own parameters
(``scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>``), so they can be raised later
without breaking links created before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_SCHEME = "scrypt"
_LOG2_N = 14  # n = 16384, r = 8: 16 MiB and some tens of ms per hash
_R = 8
_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAX_LOG2_N = 20  # refuse stored parameters that would make a verify a denial of service


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _derive(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * r * n + 1024 * 1024, dklen=_HASH_BYTES)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _derive(password, salt, _LOG2_N, _R, _P)
    return f"{_SCHEME}${_LOG2_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(stored: str, candidate: str) -> bool:
    """Whether ``candidate`` is the password ``stored`` was made from (constant time)."""
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME or not 1 <= int(log2_n) <= _MAX_LOG2_N:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _derive(candidate, base64.b64decode(salt, validate=True),
                         int(log2_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, actual)
