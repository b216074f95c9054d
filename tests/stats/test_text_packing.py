"""The consumer's text columns travel as one joined string each, split again by
Postgres (``repository.pack_text``): every value must come back exactly, or the column
must go as an array instead."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.stats.batch import CLICK_COLUMNS, click_columns
from services.stats.repository import pack_text, write_clicks
from tests.conftest import Tenant
from tests.stats.support import click, make_link

SPLIT = "SELECT string_to_array($1, E'\\x1f', E'\\x1e')"
# Values that a separator-joined column could not carry as they are.
AWKWARD: list[list[str | None]] = [
    [""],  # splits into no element at all
    ["", ""], [None], [None, ""], ["a\x1fb"], ["\x1e"], ["x\x1ey", None], ["a", "b\x1f"],
    ["déjà vu", "日本", "\U0001f600", None, "", "tab\tand\nnewline"],
]


def split_like_postgres(text: str) -> list[str | None]:
    """``string_to_array(text, E'\\x1f', E'\\x1e')`` for a non-empty ``text``."""
    return [None if part == "\x1e" else part for part in text.split("\x1f")]


@given(st.lists(st.none() | st.text(alphabet=st.sampled_from("ab\x1e\x1f é")), min_size=1))
def test_a_packed_column_splits_back_into_its_values(column: list[str | None]) -> None:
    text = pack_text(column)
    if text is not None:
        assert split_like_postgres(text) == column
    else:  # only when a value holds a separator or the marker, or a lone empty string
        assert column == [""] or any(v and ("\x1e" in v or "\x1f" in v) for v in column)


@pytest.mark.stack
async def test_postgres_splits_what_pack_text_accepts(db: asyncpg.Pool) -> None:
    for column in [*AWKWARD, ["a", None, "b"], ["only"], [None, None, "x"]]:
        text = pack_text(column)
        if text is not None:
            assert await db.fetchval(SPLIT, text) == column, column


@pytest.mark.stack
async def test_clicks_with_awkward_text_are_stored_exactly(db: asyncpg.Pool,
                                                           tenant: Tenant) -> None:
    link_id, _ = await make_link(db, tenant, "packed")
    at = datetime(2024, 3, 5, 12, tzinfo=UTC)
    agents = ["ua\x1fone", "\x1e", "", None, "plain", "ua two"]
    referers = [None, "https://a.example/\x1e", "", "https://b.example/", None, ""]
    cities = ["", "Paris", None, "", "x\x1fy", "Lyon"]
    regions = ["", None, "FR-IDF", "", None, "FR-ARA"]  # packed: "" and None kept apart
    events = [click(link_id, tenant.domain_id, ts=at, user_agent=agent, referer=referer,
                    city=city, region=region, utm_source=None)
              for agent, referer, city, region in zip(agents, referers, cities, regions,
                                                      strict=True)]
    columns = click_columns(events)
    async with db.acquire() as conn, conn.transaction():
        assert await write_clicks(conn, columns) == len(events)
    names = ["user_agent", "referer", "city", "region", "utm_source", "path"]
    sent = {row[0]: row[1:] for row in zip(
        *(columns[CLICK_COLUMNS.index(n)] for n in ["event_id", *names]), strict=True)}
    rows = await db.fetch(f"""SELECT event_id, {", ".join(names)} FROM stats_clicks
                              WHERE link_id = $1""", link_id)
    assert {r[0]: tuple(r)[1:] for r in rows} == sent
