"""Generated paths and link ids, from a cryptographically secure source.

A domain's ``linkType`` decides the shape of generated paths. Random paths are long
enough that they cannot be enumerated (``random``: ~41 bits, ``secure``: ~71 bits);
case-insensitive domains draw from lower case and digits only, with a longer length
for the same entropy. The fixed-length types are what the user asked for. ``increment``
turns the domain's counter into base36. Collisions and reserved words are retried by
the caller (the database's unique index is the judge).
"""

from __future__ import annotations

import secrets
import string
from typing import Final

from services.management.links.validation import is_reserved

_BASE62: Final = string.ascii_letters + string.digits
_BASE36: Final = string.digits + string.ascii_lowercase
LINK_TYPES: Final = ("random", "secure", "four-char", "eight-char", "ten-char", "increment")

# (length on a case-sensitive domain, length on a case-insensitive one)
_LENGTHS: Final = {
    "random": (7, 8),
    "secure": (12, 14),
    "four-char": (4, 4),
    "eight-char": (8, 8),
    "ten-char": (10, 10),
}
DEFAULT_SLUG_LENGTH: Final = _LENGTHS["random"][0]


def draw(alphabet: str, length: int) -> str:
    """``length`` uniform picks from ``alphabet`` (at most 256 characters), from one
    ``secrets.token_bytes`` call: bytes past the largest multiple of the alphabet size
    are rejected, so there is no modulo bias. (secrets.choice per character is ~20x
    slower, which a bulk create of 1000 links notices.)"""
    size = len(alphabet)
    cutoff = 256 - 256 % size
    picked: list[str] = []
    while len(picked) < length:
        for byte in secrets.token_bytes(2 * (length - len(picked)) + 4):
            if byte < cutoff:
                picked.append(alphabet[byte % size])
                if len(picked) == length:
                    break
    return "".join(picked)


def random_slug(length: int = DEFAULT_SLUG_LENGTH, *, case_sensitive: bool = True) -> str:
    return draw(_BASE62 if case_sensitive else _BASE36, length)


def slug_for(link_type: str, *, case_sensitive: bool) -> str:
    """A fresh random path of the domain's type (not ``increment``), never reserved."""
    sensitive_len, insensitive_len = _LENGTHS.get(link_type, _LENGTHS["random"])
    length = sensitive_len if case_sensitive else insensitive_len
    while True:
        slug = random_slug(length, case_sensitive=case_sensitive)
        if not is_reserved(slug):
            return slug


def base36(number: int) -> str:
    if number < 0:
        raise ValueError("base36 of a negative number")
    digits = []
    while True:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
        if number == 0:
            return "".join(reversed(digits))


def new_id_string() -> str:
    """Short.io's shape, ``lnk_<letters and digits>_<letters and digits>``: the SDK's zod
    schemas check it (``tests/sdk/contract.mjs``). 16 random base-62 characters, as the
    one-part form before it had (old ids keep working: nothing parses them)."""
    return f"lnk_{draw(_BASE62, 4)}_{draw(_BASE62, 12)}"


def new_folder_id() -> str:
    return "fld_" + draw(_BASE62, 16)
