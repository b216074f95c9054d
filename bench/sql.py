"""The SQL of the benchmark's set-up (the statistics loader has its own module).

Used only where the public interfaces cannot do the job in time: creating links when
the management API has no bulk endpoint yet, and listing what was created.
"""

from __future__ import annotations

import asyncpg


async def insert_links(conn: asyncpg.Connection, *, domain_id: int, team_id: int,
                       prefix: str, first: int, count: int) -> int:
    """Links ``{prefix}{first}`` .. ``{prefix}{first+count-1}`` to example.com, in one query."""
    status: str = await conn.execute(
        """INSERT INTO links (id_string, domain_id, team_id, path, path_key, original_url)
           SELECT 'bench' || $1::bigint || '-' || g, $1, $2, $3 || g, lower($3 || g),
                  'https://example.com/' || g
           FROM generate_series($4::bigint, $4::bigint + $5 - 1) AS g
           ON CONFLICT DO NOTHING""",
        domain_id, team_id, prefix, first, count,
    )
    return int(status.rsplit(" ", 1)[-1])


async def domain_links(conn: asyncpg.Connection, domain_id: int) -> list[asyncpg.Record]:
    """(id, id_string, path) of every link of the domain, oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, id_string, path FROM links WHERE domain_id = $1 ORDER BY id", domain_id
    )
    return rows


async def domain_team(conn: asyncpg.Connection, domain_id: int) -> int:
    team: int = await conn.fetchval("SELECT team_id FROM domains WHERE id = $1", domain_id)
    return team


async def committed_events(conn: asyncpg.Connection, group: str, topic: str) -> int:
    """Events the stats consumer group has committed with their rollups (its offsets)."""
    total: int = await conn.fetchval(
        """SELECT coalesce(sum(next_offset), 0) FROM stats_offsets
           WHERE consumer_group = $1 AND topic = $2""",
        group, topic,
    )
    return int(total)


async def reset_stats(conn: asyncpg.Connection) -> list[str]:
    """Empties every ``stats_*`` table of the bench database (the bench's own), so that a
    pipeline run counts fresh clicks rather than skipping the previous run's as replays."""
    tables: list[str] = [r["tablename"] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'stats\\_%'"
    )]
    if tables:
        await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))
    return tables
