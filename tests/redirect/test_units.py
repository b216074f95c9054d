"""Pure parts of the edge: URL building, rule order, cache, breaker, geo, visitor."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.redirect.breaker import Breaker
from services.redirect.cache import RecordCache
from services.redirect.geo import ProxyTrust, region_code
from services.redirect.metrics import sample_line
from services.redirect.resolve import TokenBucket, hostname_of, path_of, query_of
from services.redirect.rules import Outcome, Visit, decide
from services.redirect.unlock import AttemptLimiter, make_token, token_valid
from services.redirect.urls import add_utm, pass_query, safe_location
from services.redirect.visitor import hide_ip, is_bot, split_side
from shared.linkrecord import DomainRecord, LinkRecord

DOMAIN = DomainRecord(version=1, domain_id=1, hostname="s.example")
NOW = 1_800_000_000.0


def link(**fields: object) -> LinkRecord:
    base: dict[str, object] = {"version": 1, "link_id": 7, "id_string": "x", "domain_id": 1,
                               "path": "p", "url": "https://dest.example/"}
    return LinkRecord.model_validate(base | fields)


@given(st.text())
def test_location_never_carries_control_characters(url: str) -> None:
    location = safe_location(url)
    assert location.isascii()
    assert all(0x20 < ord(c) < 0x7F for c in location)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E)))
def test_location_keeps_clean_urls(url: str) -> None:
    assert safe_location(url) == url


def test_utm_and_query_string() -> None:
    assert add_utm("https://a.example/x?utm_source=keep#f", {"utm_source": "new",
                   "utm_medium": "m"}) == "https://a.example/x?utm_source=keep&utm_medium=m#f"
    assert pass_query("https://a.example/x#frag", "a=1") == "https://a.example/x?a=1#frag"
    assert pass_query("https://a.example/x?", "a=1") == "https://a.example/x?a=1"
    assert pass_query("https://a.example/x?b=2", "") == "https://a.example/x?b=2"


def test_host_and_path_normalisation() -> None:
    assert hostname_of("Example.COM:8443") == "example.com"
    assert hostname_of("bücher.example") == "xn--bcher-kva.example"
    assert hostname_of("[::1]:80") == "[::1]"
    assert hostname_of("example.com.") == "example.com"
    assert path_of("/caf%C3%A9?x=1") == "café"
    assert path_of("/") == ""


def visit(**fields: object) -> Visit:
    return Visit(**({"now": NOW} | fields))  # type: ignore[arg-type]


def test_rules_in_order() -> None:
    everything = link(archived=True, expires_at=NOW - 1, password_hash="h",
                      iphone_url="https://ios.example/", cloaking=True, clicks_limit=1)
    assert decide(DOMAIN, everything, visit()).status == 404
    expired = everything.model_copy(update={"archived": False})
    assert decide(DOMAIN, expired, visit()).status == 410
    used_up = expired.model_copy(update={"expires_at": None})
    assert decide(DOMAIN, used_up, visit(clicks=2)).outcome is Outcome.EXPIRED
    locked = used_up.model_copy(update={"clicks_limit": None})
    assert decide(DOMAIN, locked, visit(user_agent_device="ios")).outcome is Outcome.PASSWORD
    unlocked = decide(DOMAIN, locked, visit(user_agent_device="ios", unlocked=True))
    assert (unlocked.outcome, unlocked.location) == (Outcome.CLOAK, "https://ios.example/")
    assert decide(None, locked, visit()).status == 404
    assert decide(DOMAIN.model_copy(update={"deleted": True}), locked, visit()).status == 404


def test_cloaking_only_frames_http_urls() -> None:
    decision = decide(DOMAIN, link(url="javascript:alert(1)", cloaking=True), visit())
    assert decision.outcome is Outcome.REDIRECT


@given(st.integers(min_value=1, max_value=100))
def test_split_is_stable_and_proportional(percent: int) -> None:
    sides = [split_side(f"visitor{i}", 7, percent) for i in range(2000)]
    assert sides == [split_side(f"visitor{i}", 7, percent) for i in range(2000)]
    share = sides.count("b") / len(sides)
    assert abs(share - percent / 100) < 0.06


def test_visitor_helpers() -> None:
    assert is_bot("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)")
    assert not is_bot("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
    assert hide_ip("203.0.113.77", truncate=True) == "203.0.113.0"
    assert hide_ip("2001:db8:1:2::1", truncate=True) == "2001:db8:1::"
    assert hide_ip("203.0.113.77", truncate=False) is None


def test_unlock_tokens() -> None:
    token = make_token(b"k", 7, "hash-a", int(NOW) + 60)
    assert token_valid(b"k", token, 7, "hash-a", NOW)
    assert not token_valid(b"k", token, 8, "hash-a", NOW)  # another link
    assert not token_valid(b"k", token, 7, "hash-b", NOW)  # password changed
    assert not token_valid(b"other", token, 7, "hash-a", NOW)
    assert not token_valid(b"k", token, 7, "hash-a", NOW + 61)  # expired
    assert not token_valid(b"k", "garbage", 7, "hash-a", NOW)
    limiter = AttemptLimiter(limit=2, window=60)
    assert [limiter.allowed(limiter.hit("a")) for _ in range(3)] == [True, True, False]


def test_cache_lru_ttl_and_invalidation() -> None:
    cache: RecordCache[str] = RecordCache(maxsize=2, ttl=60, negative_ttl=60)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == (True, "1")
    cache.put("c", "3")  # evicts b, the least recently used
    assert cache.get("b") == (False, None)
    since = cache.stamp()
    cache.invalidate("a")
    cache.put("a", "stale", since)  # fetched before the invalidation: not stored
    assert cache.get("a") == (False, None)
    cache.put("other", "fresh", since)  # other keys are not held back
    assert cache.get("other") == (True, "fresh")
    cache.put("a", "new", cache.stamp())
    assert cache.get("a") == (True, "new")
    cache.put("miss", None)
    assert cache.get("miss") == (True, None)
    expired: RecordCache[str] = RecordCache(maxsize=2, ttl=0, negative_ttl=0)
    expired.put("a", "1")
    assert expired.get("a") == (False, None)


def test_breaker_opens_and_half_opens() -> None:
    breaker = Breaker(failures=2, cooldown=0.0)
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.is_open
    assert breaker.allow()  # cooldown 0: one trial
    assert not breaker.allow()  # only one at a time
    breaker.success()
    assert not breaker.is_open and breaker.allow()
    slow = Breaker(failures=1, cooldown=60)
    slow.failure()
    assert not slow.allow()


async def test_breaker_waiters_ride_the_trial() -> None:
    """Lookups arriving during the half-open trial wait for it (bounded) rather than all
    going to the fallback: True once it finds Redis back, False when it fails."""
    breaker = Breaker(failures=1, cooldown=0.0, trial_wait=0.05)
    breaker.failure()
    assert await breaker.trial_outcome() is False  # no trial under way
    assert breaker.allow()  # the trial
    waiters = [asyncio.ensure_future(breaker.trial_outcome()) for _ in range(3)]
    await asyncio.sleep(0)
    breaker.success()
    assert await asyncio.gather(*waiters) == [True, True, True]
    breaker.failure()
    assert breaker.allow()
    waiter = asyncio.ensure_future(breaker.trial_outcome())
    await asyncio.sleep(0)
    breaker.failure()
    assert await waiter is False and breaker.is_open
    assert breaker.allow()  # cooldown 0: the next trial, which never settles here
    assert await breaker.trial_outcome() is False  # the wait is bounded (trial_wait)


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=0.0, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_geo_helpers() -> None:
    assert region_code("US", "ca") == "US-CA"
    assert region_code("US", "US-CA") == "US-CA"
    assert region_code(None, "CA") is None
    trust = ProxyTrust([ip_network("10.0.0.0/8")])
    assert trust.client_ip("10.1.1.1", "1.2.3.4, 10.2.2.2") == "1.2.3.4"
    assert trust.client_ip("8.8.8.8", "1.2.3.4") == "8.8.8.8"  # untrusted peer
    assert trust.client_ip("10.1.1.1", "evil, 5.6.7.8") == "5.6.7.8"
    assert trust.client_ip("10.1.1.1", "not-an-ip") == "10.1.1.1"
    forwarded = {"X-Forwarded-For": "1.2.3.4"}
    assert trust.client_ip_of("10.1.1.1", forwarded) == "1.2.3.4"
    assert ProxyTrust([]).client_ip_of("10.1.1.1", forwarded) == "10.1.1.1"  # none trusted


def test_query_of() -> None:
    assert [query_of(t) for t in ("/p", "/p?a=1&b", "/p?a=1#frag", "/p?")] == [
        "", "a=1&b", "a=1", ""]


def test_mget_packing() -> None:
    from services.redirect.batcher import pack_mget

    assert pack_mget(["a", "bé"]) == b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$3\r\nb\xc3\xa9\r\n"


_text = st.text(max_size=40)
_maybe = st.none() | _text


@given(path=_text, ua=_text, referer=_maybe, utm=_maybe, ts=st.floats(0, 4e9),
       ip=st.none() | st.ip_addresses().map(str), hide=st.booleans(),
       side=st.sampled_from([None, "a", "b"]))
def test_encoded_events_are_click_events(path: str, ua: str, referer: str | None,
                                         utm: str | None, ts: float, ip: str | None,
                                         hide: bool, side: str | None) -> None:
    from services.redirect.clicks import Encoder, link_facts
    from shared.events import ClickEvent

    encoder = Encoder(b"k" * 32, truncate_hidden_ip=False)
    draft = (ts, 7, path, link_facts(7, 9, 302, side, utm, None, "c", "redirect"),
             (ip, ua, referer, "DE", "DE-BY", hide))
    event = ClickEvent.from_bytes(encoder.encode(draft))
    assert (event.link_id, event.domain_id, event.path, event.status) == (7, 9, path, 302)
    assert event.ip == (None if hide else ip)
    assert (event.user_agent, event.referer) == (ua or None, referer)
    assert (event.country, event.region, event.ab_side) == ("DE", "DE-BY", side)
    assert (event.utm_source, event.utm_campaign, event.outcome) == (utm, "c", "redirect")
    assert abs(event.ts.timestamp() - ts) < 1e-3
    assert event.visitor and event.bot == is_bot(ua)
    assert ClickEvent.from_bytes(encoder.encode(draft)).event_id != event.event_id


@pytest.mark.parametrize(("edge", "headers"), [
    ("cloudflare", {"CF-IPCountry": "us", "CF-Region-Code": "CA"}),
    ("cloudfront", {"CloudFront-Viewer-Country": "US",
                    "CloudFront-Viewer-Country-Region": "CA"}),
    ("vercel", {"X-Vercel-IP-Country": "US", "X-Vercel-IP-Country-Region": "CA"}),
])
def test_edge_headers_trusted_only_from_proxies(edge: str, headers: dict[str, str]) -> None:
    from services.redirect.geo import GeoLocator, Place

    trust = ProxyTrust([ip_network("10.0.0.0/8")])
    geo = GeoLocator(edge=edge, trust=trust, database=None)
    assert geo.locate("10.0.0.1", "8.8.8.8", headers) == Place("US", "US-CA")
    # From an untrusted peer the headers are ignored: the bundled RIR data answers.
    assert geo.locate("8.8.8.8", "8.8.8.8", headers) == Place("US", None)
    assert geo.locate("1.0.16.1", "1.0.16.1", headers) == Place("JP", None)


@given(st.integers(min_value=0, max_value=2**63))
def test_metric_samples_are_whole_counts(count: int) -> None:
    # A float format kept 6 digits: past a million, a counter seemed to stand still.
    line = sample_line("linkhop_click_events_sent_total", "", count)
    assert line == f"linkhop_click_events_sent_total {count}"
    assert int(line.rsplit(" ", 1)[1]) == count
