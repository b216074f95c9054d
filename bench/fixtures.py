"""The data the redirect and management loads need: one domain, API keys, a hot link
and N links, created through the management API (its bulk endpoint, 1000 a call).

When the bulk endpoint is not there, links are inserted with SQL and Redis is rebuilt
with the logic of ``linkhop cache rebuild``; the report says which way was used.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp
import asyncpg

from bench import sql
from bench.environment import BenchEnv
from bench.httpclient import call
from services import cli

log = logging.getLogger("bench")

BULK_SIZE = 1000
HOT_PATH = "hot"
PATH_PREFIX = "l"


@dataclass
class Seed:
    hostname: str
    domain_id: int
    keys: list[str]
    hot_path: str
    paths: list[str] = field(default_factory=list)
    link_ids: list[int] = field(default_factory=list)  # numeric ids (stats rollups)
    id_strings: list[str] = field(default_factory=list)  # API ids (statistics endpoints)
    bulk_ms: list[float] = field(default_factory=list)  # one per successful bulk call
    how: str = ""

    def key(self, i: int) -> str:
        """Keys in turn: the per-key rate limit is not what these loads measure."""
        return self.keys[i % len(self.keys)]


def _bulk_body(hostname: str, first: int, count: int) -> dict[str, object]:
    return {
        "domain": hostname,
        "links": [{"originalURL": f"https://example.com/{i}", "path": f"{PATH_PREFIX}{i}"}
                  for i in range(first, first + count)],
    }


def _bulk_ok(status: int, body: object, count: int) -> bool:
    """A 2xx whose per-item results (when it gives them) are all links, not errors."""
    if not 200 <= status < 300:
        return False
    items = body if isinstance(body, list) else (
        body.get("links") or body.get("results") if isinstance(body, dict) else None)
    if not isinstance(items, list):
        return True
    bad = [i for i in items
           if isinstance(i, dict) and (i.get("error") or i.get("success") is False)]
    return len(items) == count and not bad


async def create_domain_and_keys(env: BenchEnv, hostname: str, keys: int) -> tuple[int, list[str]]:
    settings = env.settings()
    row = await cli.add_domain(settings, hostname)
    secrets = [await cli.create_key(settings, domain=hostname, description=f"bench {i}")
               for i in range(keys)]
    return int(row["id"]), secrets


async def seed(env: BenchEnv, management_url: str, hostname: str, *, links: int,
               keys: int = 8) -> Seed:
    domain_id, secrets = await create_domain_and_keys(env, hostname, keys)
    result = Seed(hostname, domain_id, secrets, HOT_PATH)
    fallback_from: int | None = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        hot = await call(session, "POST", f"{management_url}/links", key=secrets[0],
                         json={"domain": hostname, "originalURL": "https://example.com/hot",
                               "path": HOT_PATH})
        if not 200 <= hot.status < 300:
            raise RuntimeError(f"POST /links answered {hot.status}: {hot.body}")
        for n, first in enumerate(range(0, links, BULK_SIZE)):
            count = min(BULK_SIZE, links - first)
            answer = await call(session, "POST", f"{management_url}/links/bulk",
                                key=result.key(n), json=_bulk_body(hostname, first, count))
            if not _bulk_ok(answer.status, answer.body, count):
                log.warning("POST /links/bulk answered %s: falling back to SQL", answer.status)
                fallback_from = first
                result.how = (f"SQL + `linkhop cache rebuild` logic (POST /links/bulk answered "
                              f"{answer.status})")
                break
            result.bulk_ms.append(answer.ms)
    conn = await asyncpg.connect(env.database_url, timeout=10)
    try:
        if fallback_from is not None:
            team_id = await sql.domain_team(conn, domain_id)
            await sql.insert_links(conn, domain_id=domain_id, team_id=team_id,
                                   prefix=PATH_PREFIX, first=fallback_from,
                                   count=links - fallback_from)
        rows = await sql.domain_links(conn, domain_id)
    finally:
        await conn.close()
    if fallback_from is not None:
        await cli.rebuild_cache(env.settings())
    else:
        result.how = f"POST /links/bulk, {BULK_SIZE} links a call"
    for row in rows:
        if row["path"] != HOT_PATH:
            result.paths.append("/" + row["path"])
            result.link_ids.append(int(row["id"]))
            result.id_strings.append(str(row["id_string"]))
    if len(result.paths) < links:
        raise RuntimeError(f"only {len(result.paths)} of {links} links were created")
    await asyncio.sleep(0)
    return result
