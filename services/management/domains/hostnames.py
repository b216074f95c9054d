"""Hostname normalisation: lower case, no port, punycode (IDNA)."""

from __future__ import annotations

import re

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_hostname(raw: str) -> tuple[str, str]:
    """(punycode hostname, unicode hostname); ValueError when it is no valid hostname."""
    host = raw.strip().rstrip(".").lower()
    if not host or len(host) > 253 or any(c in host for c in "/:@\\ \t\r\n?#"):
        raise ValueError(f"invalid hostname: {raw!r}")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"invalid hostname: {raw!r}") from None
    labels = ascii_host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"invalid hostname: {raw!r}")
    try:
        unicode_host = ascii_host.encode("ascii").decode("idna")
    except UnicodeError:
        unicode_host = ascii_host
    return ascii_host, unicode_host
