"""SQL for a link's country and region rules."""

from __future__ import annotations

from typing import Any

import asyncpg


async def countries(conn: Any, link_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT country, original_url FROM link_countries WHERE link_id = $1 ORDER BY country",
        link_id)
    return rows


async def regions(conn: Any, link_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT country, region, original_url FROM link_regions WHERE link_id = $1"
        " ORDER BY country, region", link_id)
    return rows


async def upsert_countries(conn: Any, link_id: int, rules: list[tuple[str, str]]) -> None:
    await conn.execute(
        """INSERT INTO link_countries (link_id, country, original_url)
           SELECT $1, c, u FROM unnest($2::text[], $3::text[]) AS t(c, u)
           ON CONFLICT (link_id, country) DO UPDATE SET original_url = EXCLUDED.original_url""",
        link_id, [c for c, _ in rules], [u for _, u in rules])


async def upsert_regions(conn: Any, link_id: int, rules: list[tuple[str, str, str]]) -> None:
    await conn.execute(
        """INSERT INTO link_regions (link_id, country, region, original_url)
           SELECT $1, c, r, u FROM unnest($2::text[], $3::text[], $4::text[]) AS t(c, r, u)
           ON CONFLICT (link_id, country, region)
           DO UPDATE SET original_url = EXCLUDED.original_url""",
        link_id, [c for c, _, _ in rules], [r for _, r, _ in rules], [u for _, _, u in rules])


async def delete_country(conn: Any, link_id: int, country: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM link_countries WHERE link_id = $1 AND country = $2", link_id, country)
    return status != "DELETE 0"


async def delete_region(conn: Any, link_id: int, country: str, region: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM link_regions WHERE link_id = $1 AND country = $2 AND region = $3",
        link_id, country, region)
    return status != "DELETE 0"

