"""Rules that keep users safe: what a destination URL and a path may be."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_URL_LENGTH = 4096
MAX_PATH_LENGTH = 128
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")
_PATH = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%-]+(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$")
# Paths the edge answers itself; a link may never shadow them.
RESERVED_PATHS = frozenset({"health", "metrics", "robots.txt", "favicon.ico", "api", "_linkhop"})


def validate_destination(url: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"originalURL is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(url):
        raise ValueError("originalURL must not contain whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("originalURL must be an absolute http or https URL")
    if not parts.hostname or "\\" in url:
        raise ValueError("originalURL must be an absolute http or https URL with a host")
    return url


def validate_path(path: str) -> str:
    if not 1 <= len(path) <= MAX_PATH_LENGTH:
        raise ValueError(f"path must be 1 to {MAX_PATH_LENGTH} characters")
    if not _PATH.match(path):
        raise ValueError("path may contain only URL-safe characters")
    if path.split("/")[0].lower() in RESERVED_PATHS:
        raise ValueError(f"path {path!r} is reserved")
    return path
