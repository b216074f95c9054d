"""What the edge learns about a visitor from the request: device, bot flag, a keyed
visitor hash, and the A/B side. Pure functions; the crawler regex is compiled once."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from ipaddress import ip_address, ip_network
from typing import Literal

import crawleruseragents  # type: ignore[import-untyped]

_IOS = re.compile(r"iPhone|iPad|iPod")
_ANDROID = re.compile(r"Android")


def _compile_crawlers() -> re.Pattern[str]:
    patterns = [entry["pattern"] for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA]
    return re.compile("|".join(f"(?:{p})" for p in patterns))


_CRAWLERS = _compile_crawlers()


@lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """True when the user agent matches the maintained crawler list (an empty UA too).

    Cached: real traffic repeats a small set of user agents, and the combined regex of
    ~1,500 patterns is the costliest thing the hot path would otherwise do per request."""
    if not user_agent:
        return True
    return _CRAWLERS.search(user_agent) is not None


def device_of(user_agent: str) -> str | None:
    if _IOS.search(user_agent):
        return "ios"
    if _ANDROID.search(user_agent):
        return "android"
    return None


def visitor_hash(key: bytes, ip: str, user_agent: str) -> str:
    """Keyed, so the hash cannot be reversed by trying every IP address without the key."""
    digest = hashlib.blake2b(
        f"{ip}\x00{user_agent}".encode(), key=key[:64], digest_size=16
    )
    return digest.hexdigest()


def split_side(visitor: str, link_id: int, split_percent: int) -> Literal["a", "b"]:
    """'b' for ``split_percent`` % of visitors, stable per visitor and link."""
    bucket = int.from_bytes(
        hashlib.blake2b(f"{visitor}:{link_id}".encode(), digest_size=8).digest(), "big"
    ) % 100
    return "b" if bucket < split_percent else "a"


def hide_ip(ip: str | None, truncate: bool) -> str | None:
    """For domains hiding visitor IPs: None, or the network (IPv4 /24, IPv6 /48)."""
    if ip is None or not truncate:
        return None
    try:
        address = ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ip_network(f"{address}/{prefix}", strict=False).network_address)
