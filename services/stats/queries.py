"""SQL of the statistics API: reads of the hourly rollups (never of the raw click log,
except ``last_clicks``, which reads it newest first by index) and clearing statistics.

Unfiltered domain answers come from the per-dimension rollups (one row per domain, hour
and value); link breakdowns and every answer with include/exclude filters come from
``stats_facts``, which keeps every dimension of a click together per link and hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from services.stats.repository import DIMENSION_COLUMNS

_UNPIVOT = ", ".join(f"('{dim}', f.{col})" for dim, col in DIMENSION_COLUMNS.items())


@dataclass(frozen=True)
class Scope:
    """A domain, or one link of it."""

    domain_id: int
    link_id: int | None = None


@dataclass(frozen=True)
class Filters:
    """include/exclude: raw-click column -> values; human: only humans (True) or only
    bots (False); link ids stand for paths."""

    include: dict[str, list[str]] = field(default_factory=dict)
    exclude: dict[str, list[str]] = field(default_factory=dict)
    human: bool | None = None
    include_links: list[int] | None = None
    exclude_links: list[int] | None = None

    @property
    def empty(self) -> bool:
        return (not self.include and not self.exclude and self.human is None
                and self.include_links is None and self.exclude_links is None)


class _Args:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _facts_where(args: _Args, scope: Scope, lo: datetime, hi: datetime, filters: Filters
                 ) -> str:
    where = [f"f.domain_id = {args(scope.domain_id)}",
             f"f.hour >= {args(lo)}", f"f.hour < {args(hi)}"]
    if scope.link_id is not None:
        where.insert(0, f"f.link_id = {args(scope.link_id)}")
    allowed = set(DIMENSION_COLUMNS.values())
    for column, values in filters.include.items():
        assert column in allowed  # column names come from a fixed table, never a caller
        where.append(f"f.{column} = ANY({args(values)}::text[])")
    for column, values in filters.exclude.items():
        assert column in allowed
        where.append(f"coalesce(f.{column} <> ALL({args(values)}::text[]), true)")
    if filters.human is not None:
        where.append(f"f.bot = {args(not filters.human)}")
    if filters.include_links is not None:
        where.append(f"f.link_id = ANY({args(filters.include_links)}::bigint[])")
    if filters.exclude_links is not None:
        where.append(f"f.link_id <> ALL({args(filters.exclude_links)}::bigint[])")
    return " AND ".join(where)


async def link_by_id_string(conn: Any, id_string: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, domain_id, team_id, path FROM links WHERE id_string = $1", id_string
    )
    return row


async def domain_team(conn: Any, domain_id: int) -> int | None:
    team: int | None = await conn.fetchval("SELECT team_id FROM domains WHERE id = $1",
                                           domain_id)
    return team


async def links_by_id_strings(conn: Any, domain_id: int, id_strings: list[str]
                              ) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT id_string, id FROM links WHERE domain_id = $1 AND id_string = ANY($2::text[])",
        domain_id, id_strings,
    )
    return {r["id_string"]: r["id"] for r in rows}


async def links_by_paths(conn: Any, domain_id: int, paths: list[str]) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM links WHERE domain_id = $1 AND (path = ANY($2::text[])"
        " OR path_key = ANY($2::text[]))",
        domain_id, paths,
    )
    return [r["id"] for r in rows]


async def first_hour(conn: Any, scope: Scope) -> datetime | None:
    if scope.link_id is not None:
        sql, arg = "SELECT min(hour) FROM stats_link_hourly WHERE link_id = $1", scope.link_id
    else:
        sql, arg = "SELECT min(hour) FROM stats_domain_hourly WHERE domain_id = $1", \
            scope.domain_id
    first: datetime | None = await conn.fetchval(sql, arg)
    return first


async def hourly(conn: Any, scope: Scope, lo: datetime, hi: datetime, filters: Filters
                 ) -> list[tuple[datetime, int, int]]:
    """(hour, clicks, human clicks) for each hour with clicks in ``[lo, hi)``."""
    if filters.empty:
        if scope.link_id is not None:
            rows = await conn.fetch(
                """SELECT hour, clicks, human_clicks FROM stats_link_hourly
                   WHERE link_id = $1 AND hour >= $2 AND hour < $3""",
                scope.link_id, lo, hi)
        else:
            rows = await conn.fetch(
                """SELECT hour, clicks, human_clicks FROM stats_domain_hourly
                   WHERE domain_id = $1 AND hour >= $2 AND hour < $3""",
                scope.domain_id, lo, hi)
    else:
        args = _Args()
        where = _facts_where(args, scope, lo, hi, filters)
        rows = await conn.fetch(
            f"""SELECT f.hour, sum(f.clicks)::bigint AS clicks,
                       coalesce(sum(f.clicks) FILTER (WHERE NOT f.bot), 0)::bigint
                         AS human_clicks
                FROM stats_facts f WHERE {where} GROUP BY f.hour""",
            *args.values)
    return [(r["hour"], r["clicks"], r["human_clicks"]) for r in rows]


async def breakdowns(conn: Any, scope: Scope, lo: datetime, hi: datetime, dims: list[str],
                     limit: int, filters: Filters) -> dict[str, list[tuple[str, int]]]:
    """The top ``limit`` values of each dimension in ``dims``, by clicks."""
    if filters.empty and scope.link_id is None:
        args = _Args()
        sql = f"""
            SELECT dim, value, clicks FROM (
                SELECT dim, value, sum(clicks)::bigint AS clicks,
                       row_number() OVER (PARTITION BY dim ORDER BY sum(clicks) DESC, value)
                         AS rank
                FROM stats_domain_dims
                WHERE domain_id = {args(scope.domain_id)} AND dim = ANY({args(dims)}::text[])
                  AND hour >= {args(lo)} AND hour < {args(hi)}
                GROUP BY dim, value) ranked
            WHERE rank <= {args(limit)}
            ORDER BY dim, clicks DESC, value"""
    else:
        args = _Args()
        where = _facts_where(args, scope, lo, hi, filters)
        sql = f"""
            SELECT dim, value, clicks FROM (
                SELECT d.dim, d.value, sum(f.clicks)::bigint AS clicks,
                       row_number() OVER (PARTITION BY d.dim
                                          ORDER BY sum(f.clicks) DESC, d.value) AS rank
                FROM stats_facts f CROSS JOIN LATERAL (VALUES {_UNPIVOT}) AS d(dim, value)
                WHERE {where} AND d.value IS NOT NULL AND d.dim = ANY({args(dims)}::text[])
                GROUP BY d.dim, d.value) ranked
            WHERE rank <= {args(limit)}
            ORDER BY dim, clicks DESC, value"""
    result: dict[str, list[tuple[str, int]]] = {dim: [] for dim in dims}
    for row in await conn.fetch(sql, *args.values):
        result[row["dim"]].append((row["value"], row["clicks"]))
    return result


async def value_series(conn: Any, scope: Scope, dim: str, values: list[str], lo: datetime,
                       hi: datetime, filters: Filters) -> list[tuple[str, datetime, int]]:
    """(value, hour, clicks) of the given values of one dimension."""
    args = _Args()
    if filters.empty:
        sql = f"""SELECT value, hour, sum(clicks)::bigint AS clicks FROM stats_domain_dims
                  WHERE domain_id = {args(scope.domain_id)} AND dim = {args(dim)}
                    AND value = ANY({args(values)}::text[])
                    AND hour >= {args(lo)} AND hour < {args(hi)}
                  GROUP BY value, hour"""
    else:
        column = DIMENSION_COLUMNS[dim]
        where = _facts_where(args, scope, lo, hi, filters)
        sql = f"""SELECT f.{column} AS value, f.hour, sum(f.clicks)::bigint AS clicks
                  FROM stats_facts f
                  WHERE {where} AND f.{column} = ANY({args(values)}::text[])
                  GROUP BY f.{column}, f.hour"""
    return [(r["value"], r["hour"], r["clicks"]) for r in await conn.fetch(sql, *args.values)]


async def top_links(conn: Any, domain_id: int, lo: datetime, hi: datetime, limit: int,
                    filters: Filters) -> list[tuple[int, str, int]]:
    """(link id, path, clicks) of the most clicked links of a domain."""
    args = _Args()
    if filters.empty:
        inner = f"""SELECT link_id, sum(clicks)::bigint AS clicks FROM stats_link_hourly
                    WHERE domain_id = {args(domain_id)}
                      AND hour >= {args(lo)} AND hour < {args(hi)}
                    GROUP BY link_id"""
    else:
        where = _facts_where(args, Scope(domain_id), lo, hi, filters)
        inner = f"""SELECT f.link_id, sum(f.clicks)::bigint AS clicks FROM stats_facts f
                    WHERE {where} GROUP BY f.link_id"""
    rows = await conn.fetch(
        f"""SELECT t.link_id, coalesce(l.path, '') AS path, t.clicks
            FROM ({inner}) t LEFT JOIN links l ON l.id = t.link_id
            ORDER BY t.clicks DESC, t.link_id LIMIT {args(limit)}""",
        *args.values)
    return [(r["link_id"], r["path"], r["clicks"]) for r in rows]


async def link_series(conn: Any, domain_id: int, link_ids: list[int], lo: datetime,
                      hi: datetime, filters: Filters) -> list[tuple[int, datetime, int]]:
    args = _Args()
    if filters.empty:
        sql = f"""SELECT link_id, hour, clicks FROM stats_link_hourly
                  WHERE link_id = ANY({args(link_ids)}::bigint[])
                    AND domain_id = {args(domain_id)}
                    AND hour >= {args(lo)} AND hour < {args(hi)}"""
    else:
        where = _facts_where(args, Scope(domain_id), lo, hi, filters)
        sql = f"""SELECT f.link_id, f.hour, sum(f.clicks)::bigint AS clicks
                  FROM stats_facts f
                  WHERE {where} AND f.link_id = ANY({args(link_ids)}::bigint[])
                  GROUP BY f.link_id, f.hour"""
    return [(r["link_id"], r["hour"], r["clicks"]) for r in await conn.fetch(sql, *args.values)]


async def clicked_links(conn: Any, domain_id: int, lo: datetime, hi: datetime,
                        filters: Filters) -> int:
    """How many distinct links of the domain were clicked in ``[lo, hi)``."""
    args = _Args()
    if filters.empty:
        sql = f"""SELECT count(DISTINCT link_id) FROM stats_link_hourly
                  WHERE domain_id = {args(domain_id)}
                    AND hour >= {args(lo)} AND hour < {args(hi)}"""
    else:
        where = _facts_where(args, Scope(domain_id), lo, hi, filters)
        sql = f"SELECT count(DISTINCT f.link_id) FROM stats_facts f WHERE {where}"
    count: int = await conn.fetchval(sql, *args.values)
    return count


async def clicks_of_links(conn: Any, domain_id: int, link_ids: list[int], lo: datetime,
                          hi: datetime) -> dict[int, int]:
    rows = await conn.fetch(
        """SELECT link_id, sum(clicks)::bigint AS clicks FROM stats_link_hourly
           WHERE link_id = ANY($1::bigint[]) AND domain_id = $2 AND hour >= $3 AND hour < $4
           GROUP BY link_id""",
        link_ids, domain_id, lo, hi)
    return {r["link_id"]: r["clicks"] for r in rows}


async def unique_visitors(conn: Any, link_id: int, lo: datetime, hi: datetime) -> int:
    """Distinct visitor hashes over the UTC days overlapping ``[lo, hi)`` (exact)."""
    count: int = await conn.fetchval(
        """SELECT count(DISTINCT visitor) FROM stats_link_visitors
           WHERE link_id = $1 AND day >= ($2::timestamptz AT TIME ZONE 'UTC')::date
             AND day <= (($3::timestamptz - interval '1 microsecond')
                         AT TIME ZONE 'UTC')::date""",
        link_id, lo, hi)
    return count


_LAST_CLICK_COLUMNS = ("ts, link_id, path, ip, user_agent, referer, country, region, city, "
                       "browser, os, device, referer_host, social, utm_source, utm_medium, "
                       "utm_campaign, bot")


async def last_clicks(conn: Any, domain_id: int, *, limit: int, before: datetime | None,
                      after: datetime | None, link_id: int | None) -> list[asyncpg.Record]:
    """The newest raw clicks, read backwards along (domain_id, ts)."""
    args = _Args()
    where = [f"domain_id = {args(domain_id)}"]
    if before is not None:
        where.append(f"ts < {args(before)}")
    if after is not None:
        where.append(f"ts > {args(after)}")
    if link_id is not None:
        where.append(f"link_id = {args(link_id)}")
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_LAST_CLICK_COLUMNS} FROM stats_clicks WHERE {" AND ".join(where)}
            ORDER BY ts DESC LIMIT {args(limit)}""",
        *args.values)
    return rows


async def clear_domain(conn: Any, domain_id: int) -> None:
    """Deletes every statistic of a domain (call inside a transaction)."""
    await conn.execute(
        """DELETE FROM stats_link_visitors WHERE link_id IN
               (SELECT DISTINCT link_id FROM stats_link_hourly WHERE domain_id = $1)""",
        domain_id)
    for table in ("stats_link_hourly", "stats_domain_hourly", "stats_domain_dims",
                  "stats_facts", "stats_clicks"):
        await conn.execute(f"DELETE FROM {table} WHERE domain_id = $1", domain_id)


async def clear_link(conn: Any, domain_id: int, link_id: int) -> None:
    """Deletes one link's statistics and takes them out of its domain's rollups (call
    inside a transaction)."""
    await conn.execute(
        """UPDATE stats_domain_hourly d
           SET clicks = d.clicks - l.clicks, human_clicks = d.human_clicks - l.human_clicks
           FROM stats_link_hourly l
           WHERE l.link_id = $1 AND d.domain_id = $2 AND d.hour = l.hour""",
        link_id, domain_id)
    await conn.execute(
        f"""UPDATE stats_domain_dims d SET clicks = d.clicks - l.clicks
            FROM (SELECT f.hour, x.dim, x.value, sum(f.clicks) AS clicks
                  FROM stats_facts f CROSS JOIN LATERAL (VALUES {_UNPIVOT}) AS x(dim, value)
                  WHERE f.link_id = $1 AND x.value IS NOT NULL
                  GROUP BY f.hour, x.dim, x.value) l
            WHERE d.domain_id = $2 AND d.dim = l.dim AND d.hour = l.hour
              AND d.value = l.value""",
        link_id, domain_id)
    await conn.execute("DELETE FROM stats_domain_dims WHERE domain_id = $1 AND clicks <= 0",
                       domain_id)
    await conn.execute("DELETE FROM stats_domain_hourly WHERE domain_id = $1 AND clicks <= 0",
                       domain_id)
    for table in ("stats_link_hourly", "stats_link_visitors"):
        await conn.execute(f"DELETE FROM {table} WHERE link_id = $1", link_id)
    for table in ("stats_facts", "stats_clicks"):
        await conn.execute(f"DELETE FROM {table} WHERE domain_id = $1 AND link_id = $2",
                           domain_id, link_id)
