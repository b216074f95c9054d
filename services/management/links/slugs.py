"""Generated paths and link ids, from a cryptographically secure source.

Random paths are long enough that they cannot be enumerated: 6 characters of base62
(~35.7 bits) by default; collisions are retried by the caller.
"""

from __future__ import annotations

import secrets
import string

_BASE62 = string.ascii_letters + string.digits
_LOWER = string.ascii_lowercase + string.digits
DEFAULT_SLUG_LENGTH = 6


def random_slug(length: int = DEFAULT_SLUG_LENGTH, *, case_sensitive: bool = True) -> str:
    alphabet = _BASE62 if case_sensitive else _LOWER
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_id_string() -> str:
    return "lnk_" + "".join(secrets.choice(_BASE62) for _ in range(16))
