"""Rules that keep users safe: what a destination URL and a path may be.

Pure functions (no I/O), shared by create, update, bulk, duplicate and targeting so
that every way in enforces the same limits. The one rule that needs the database
(no link may point at one of linkhop's own domains) lives in the service, which
checks the hostnames these functions return.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from services.management.domains.hostnames import normalize_hostname

MAX_URL_LENGTH = 4096
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PATH_LENGTH = 128
# Whitespace, C0/C1 controls, DEL, and the Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029\ufeff]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_PATH_SEGMENT_EXTRA = frozenset("-._~!$&'()*+,;=:@")
# Paths the edge answers itself; a link may never shadow them.
RESERVED_PATHS = frozenset({
    "health", "healthz", "ready", "metrics", "robots.txt", "favicon.ico", "api", "_linkhop",
    ".well-known", "openapi.json", "docs", "sitemap.xml",
})


def _check_percent_encoding(url: str) -> None:
    """Percent escapes must be well formed and decode to valid UTF-8 (which refuses
    overlong forms) without control characters (no smuggled %0d%0a or %00)."""
    if _BAD_PERCENT.search(url):
        raise ValueError("originalURL has an invalid percent-encoding")
    for run in _PERCENT_RUN.findall(url):
        raw = bytes.fromhex(run.replace("%", ""))
        try:
            text = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise ValueError("originalURL has percent-encoded bytes that are not UTF-8") from None
        if _CONTROL.search(text.replace(" ", "")):
            raise ValueError("originalURL must not contain encoded control characters")


def validate_destination(url: str, field: str = "originalURL") -> str:
    """The URL with its host in punycode; ValueError with a clear message otherwise."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"{field} is required")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"{field} is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(url):
        raise ValueError(f"{field} must not contain whitespace or control characters")
    if "\\" in url:
        raise ValueError(f"{field} must not contain backslashes")
    try:
        _check_percent_encoding(url)
    except ValueError as exc:
        raise ValueError(str(exc).replace("originalURL", field)) from None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not url.lower().startswith(
        parts.scheme.lower() + "://"
    ):
        raise ValueError(f"{field} must be an absolute http or https URL")
    netloc = parts.netloc
    if not netloc or "@" in netloc:
        raise ValueError(f"{field} must have a host and no user name or password")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"{field} has an invalid port")
    host = parts.hostname or ""
    if ":" in host:
        ascii_host = f"[{host}]"  # IPv6 literal
    else:
        try:
            ascii_host, _ = normalize_hostname(host)
        except ValueError:
            if not _is_ipv4(host):
                raise ValueError(f"{field} has an invalid host") from None
            ascii_host = host
    netloc = ascii_host + (f":{port}" if port is not None else "")
    normalized = urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query,
                             parts.fragment))
    if len(normalized) > MAX_URL_LENGTH:
        raise ValueError(f"{field} is longer than {MAX_URL_LENGTH} characters")
    return normalized


def _is_ipv4(host: str) -> bool:
    pieces = host.split(".")
    return len(pieces) == 4 and all(p.isdigit() and int(p) < 256 for p in pieces)


def destination_host(url: str) -> str:
    """The (already punycoded, lower-case) host of a URL validate_destination returned."""
    return (urlsplit(url).hostname or "").lower()


# Letters by Unicode's account that render as blank space (Hangul fillers, the Braille
# blank): a path holding one would look identical to another path without it.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _path_char_ok(char: str) -> bool:
    # Unicode letters and digits are fine (the edge decodes the request path before the
    # lookup); "%" is not, since the stored path is compared with the decoded one.
    return (char.isascii() and char.isalnum()) or char in _PATH_SEGMENT_EXTRA or (
        not char.isascii() and char.isalnum() and char not in _BLANK_LETTERS)


def validate_path(path: str) -> str:
    if not isinstance(path, str) or not 1 <= len(path) <= MAX_PATH_LENGTH:
        raise ValueError(f"path must be 1 to {MAX_PATH_LENGTH} characters")
    segments = path.split("/")
    if any(not s or s in (".", "..") for s in segments):
        raise ValueError("path must not have empty, '.' or '..' segments")
    if not all(_path_char_ok(c) for s in segments for c in s):
        raise ValueError("path may contain only letters, digits and -._~!$&'()*+,;=:@/")
    if is_reserved(path):
        raise ValueError(f"path {path!r} is reserved")
    return path


def is_reserved(path: str) -> bool:
    return path.split("/")[0].lower() in RESERVED_PATHS


def parse_instant(value: int | float | str, field: str) -> datetime:
    """Short.io's timestamps: epoch milliseconds (number or digit string) or ISO 8601."""
    if isinstance(value, bool):
        raise ValueError(f"{field} must be epoch milliseconds or an ISO 8601 date")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, int | float):
        try:
            # timedelta keeps whole milliseconds exact (a float division would not).
            return EPOCH + timedelta(milliseconds=value)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{field} is out of range") from None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field} must be epoch milliseconds or an ISO 8601 date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
