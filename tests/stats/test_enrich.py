"""Pure enrichment and batch logic (no stack)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.stats.batch import (
    CLICK_COLUMNS,
    RawRecord,
    combo_key,
    decode,
    partition_batch,
    prepare,
)
from services.stats.enrich import parse_agent, referer_host, social_network
from shared.events import ClickEvent

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
WINDOWS_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                  "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
IPAD = ("Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1")


def test_user_agents() -> None:
    iphone = parse_agent(IPHONE)
    assert (iphone.browser, iphone.os, iphone.device, iphone.bot) == (
        "Mobile Safari", "iOS", "mobile", False)
    chrome = parse_agent(WINDOWS_CHROME)
    assert (chrome.browser, chrome.os, chrome.device) == ("Chrome", "Windows", "desktop")
    assert parse_agent(IPAD).device == "tablet"
    bot = parse_agent("Googlebot/2.1 (+http://www.google.com/bot.html)")
    assert bot.bot and bot.device == "bot"
    assert parse_agent(None).browser is None
    assert parse_agent("").device is None


def test_referer_and_social() -> None:
    assert referer_host("https://www.Example.COM/a?b=c") == "example.com"
    assert referer_host("not a url") is None
    assert referer_host("http://[::1") is None
    assert referer_host(None) is None
    assert social_network("m.facebook.com") == "facebook"
    assert social_network("t.co") == "twitter"
    assert social_network("example.com") is None
    assert social_network(None) is None


@given(st.text(max_size=200))
def test_enrichment_never_raises(text: str) -> None:
    parse_agent(text)
    social_network(referer_host(text))


def _event(link_id: int = 1, **kw: Any) -> ClickEvent:
    return ClickEvent(link_id=link_id, domain_id=7, path="x", status=302, **kw)


def test_decode_reasons() -> None:
    assert decode(RawRecord(0, 0, None)) == "empty message"
    broken = decode(RawRecord(0, 0, b"{not json"))
    assert isinstance(broken, str) and broken.startswith("invalid click event")
    bad = decode(RawRecord(0, 0, b'{"schema_version": 2, "link_id": 1}'))
    assert isinstance(bad, str) and "schema_version" in bad
    huge = decode(RawRecord(0, 0, _event(link_id=2**64).to_bytes()))
    assert isinstance(huge, str) and "64-bit" in huge
    good = _event()
    assert decode(RawRecord(0, 0, good.to_bytes())) == good


def test_combo_key_is_stable_and_distinguishes_none() -> None:
    assert combo_key(("FR", None), False) == combo_key(("FR", None), False)
    assert combo_key(("FR", None), False) != combo_key(("FR", ""), False)
    assert combo_key(("FR", None), False) != combo_key(("FR", None), True)
    assert -(2**63) <= combo_key(("x",) * 11, True) < 2**63
    # Fixed across processes and releases (the key is stored): a known value.
    assert combo_key(("US",), False) == -3433054058967816457


def test_nul_bytes_are_dropped_from_text() -> None:
    event = _event(user_agent="a\x00b", referer="https://ex\x00ample.com/", city="Pa\x00ris")
    columns = prepare(partition_batch(0, [RawRecord(0, 0, event.to_bytes())])).columns
    row = dict(zip(CLICK_COLUMNS, (c[0] for c in columns), strict=True))
    assert row["user_agent"] == "ab" and row["city"] == "Paris"
    assert all("\x00" not in v for v in row.values() if isinstance(v, str))


def test_batch_keeps_offsets_and_skips_counted_part() -> None:
    events = [_event(i) for i in range(1, 6)]
    records = [RawRecord(3, 10 + i, e.to_bytes()) for i, e in enumerate(events)]
    records.insert(2, RawRecord(3, 99, b"garbage"))  # offsets need not be dense here
    batch = partition_batch(3, records)
    assert (batch.first_offset, batch.next_offset) == (10, 15)
    assert len(batch.invalid) == 1 and len(batch.events) == 5
    prepared = prepare(batch)
    assert len(prepared.columns) == len(CLICK_COLUMNS)
    rest = prepared.columns_from(13)
    link_ids = rest[CLICK_COLUMNS.index("link_id")]
    assert link_ids == [4, 5]
    assert all(len(column) == 2 for column in rest)


def test_columns_enrich_and_fill_country() -> None:
    event = _event(ip="8.8.8.8", user_agent=WINDOWS_CHROME, referer="https://t.co/x",
                   ts=datetime(2026, 1, 1, tzinfo=UTC))
    columns = prepare(partition_batch(0, [RawRecord(0, 0, event.to_bytes())])).columns
    row = dict(zip(CLICK_COLUMNS, (c[0] for c in columns), strict=True))
    assert row["country"] == "US"
    assert row["browser"] == "Chrome" and row["social"] == "twitter"
    assert row["referer_host"] == "t.co" and row["bot"] is False


def test_only_visits_that_reached_the_destination_are_clicks() -> None:
    outcomes = [None, "redirect", "cloak", "password", "expired", "not_found"]
    records = [RawRecord(0, i, _event(i + 1, outcome=o).to_bytes())
               for i, o in enumerate(outcomes)]
    batch = partition_batch(0, records)
    assert [e.outcome for _, e in batch.events] == [None, "redirect", "cloak"]
    assert not batch.invalid and batch.next_offset == len(outcomes)
