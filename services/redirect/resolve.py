"""From a request's Host and path to the compiled domain and link records."""

from __future__ import annotations

from urllib.parse import unquote

import redis.asyncio as aioredis

from shared.linkrecord import DomainRecord, LinkRecord, domain_key, link_key


def hostname_of(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):  # IPv6 literal: keep as is, drop the port
        return host.split("]")[0] + "]"
    host = host.rsplit(":", 1)[0] if ":" in host else host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


async def lookup(
    redis: aioredis.Redis, hostname: str, raw_path: str
) -> tuple[DomainRecord | None, LinkRecord | None]:
    """One MGET: the domain, the link by exact path and by lower-cased path."""
    path = unquote(raw_path.lstrip("/"))
    domain_raw, exact_raw, folded_raw = await redis.mget(
        domain_key(hostname), link_key(hostname, path), link_key(hostname, path.lower())
    )
    if domain_raw is None:
        return None, None
    domain = DomainRecord.model_validate_json(domain_raw)
    link_raw = exact_raw if domain.case_sensitive else folded_raw
    link = LinkRecord.model_validate_json(link_raw) if link_raw is not None else None
    return domain, link
