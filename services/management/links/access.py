"""What a key may see: another team's or another domain's link or domain is answered
exactly like one that does not exist (404), so a key learns nothing about them."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.management.domains import repository as domains
from services.management.domains.hostnames import normalize_hostname
from services.management.links import repository as links
from shared.apikeys import Principal
from shared.errors import BadRequest, NotFound

DOMAIN_NOT_FOUND = "Domain not found"
LINK_NOT_FOUND = "Link not found"


async def domain_by_name(conn: Any, who: Principal, name: str) -> asyncpg.Record:
    try:
        hostname, _ = normalize_hostname(name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    domain = await domains.get_by_hostname(conn, hostname)
    if domain is None or not who.may_use_domain(domain["id"], domain["team_id"]):
        raise NotFound(DOMAIN_NOT_FOUND)
    return domain


async def domain_by_id(conn: Any, who: Principal, domain_id: int | str) -> asyncpg.Record:
    try:
        number = int(domain_id)
    except (TypeError, ValueError):
        raise BadRequest("domain id must be a number") from None
    domain = await domains.get_by_id(conn, number) if 0 < number < 2**63 else None
    if domain is None or not who.may_use_domain(domain["id"], domain["team_id"]):
        raise NotFound(DOMAIN_NOT_FOUND)
    return domain


def visible(who: Principal, row: asyncpg.Record | None) -> asyncpg.Record:
    if row is None or not who.may_use_domain(row["domain_id"], row["team_id"]):
        raise NotFound(LINK_NOT_FOUND)
    return row


async def link(conn: Any, who: Principal, id_string: str) -> asyncpg.Record:
    return visible(who, await links.get_link(conn, id_string))


async def links_by_id_strings(conn: Any, who: Principal, id_strings: list[str]
                              ) -> list[asyncpg.Record]:
    """All of them, or a 404 when any is missing or not visible (then nothing changes)."""
    wanted = list(dict.fromkeys(id_strings))
    rows = await links.get_links(conn, wanted)
    found = [r for r in rows if who.may_use_domain(r["domain_id"], r["team_id"])]
    if len(found) != len(wanted):
        missing = len(wanted) - len(found)
        raise NotFound(f"{LINK_NOT_FOUND}: {missing} of the given links do not exist")
    return found
