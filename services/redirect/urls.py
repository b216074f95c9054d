"""Building the destination URL: UTM parameters, the visitor's query string, and a
Location value that can never carry an injected header line."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

# Everything printable in ASCII except space is kept as is ("%" too, so existing escapes
# are not doubled); CR, LF, other controls, space, DEL and non-ASCII are percent-encoded.
_LOCATION_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def safe_location(url: str) -> str:
    if url.isascii() and url.isprintable() and " " not in url:
        return url  # the common case: nothing to encode, no copy
    return quote(url, safe=_LOCATION_SAFE)


def add_utm(url: str, utm: dict[str, str]) -> str:
    """Adds the link's UTM parameters the destination does not already set."""
    parts = urlsplit(url)
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    extra = [(k, v) for k, v in utm.items() if v and k not in present]
    if not extra:
        return url
    query = f"{parts.query}&{urlencode(extra)}" if parts.query else urlencode(extra)
    return urlunsplit(parts._replace(query=query))


def pass_query(url: str, raw_query: str) -> str:
    """Appends the visitor's (still percent-encoded) query string, before any fragment."""
    if not raw_query:
        return url
    base, hash_, fragment = url.partition("#")
    sep = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        sep = ""
    return f"{base}{sep}{raw_query}{hash_}{fragment}"


def is_http_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))
