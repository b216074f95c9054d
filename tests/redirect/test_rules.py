"""Each link rule through the real service (Redis, Postgres, Kafka), and their order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.redirect.edge import Edge
from shared.events import ClickEvent
from shared.linkrecord import DomainRecord, RecordStore, domain_key
from shared.passwords import hash_password
from shared.record_repository import fetch_domain_record
from tests.conftest import Tenant
from tests.helpers import eventually
from tests.redirect.helpers import Client, add_link, settings_for, start, visit, wait_subscribed

pytestmark = pytest.mark.stack

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
async def edge_client(migrated: Any, tmp_path: Path, topic: str
                      ) -> AsyncIterator[tuple[Client, Edge]]:
    client, edge = await start(settings_for(
        tmp_path, clicks_topic=topic, geo_headers="cloudflare",
        trusted_proxies=["127.0.0.1/32"],
    ))
    await wait_subscribed(edge)
    yield client, edge
    await client.close()



async def set_domain(db: asyncpg.Pool, redis_client: aioredis.Redis, tenant: Tenant,
                     edge: Edge, **columns: Any) -> DomainRecord:
    """Changes the domain and waits until the edge has dropped its cached copy (the
    announcement travels through Redis pub/sub: milliseconds, not zero)."""
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
    async with db.acquire() as conn:
        await conn.execute(
            f"UPDATE domains SET {sets}, record_version = nextval('record_version_seq')"
            " WHERE id = $1", tenant.domain_id, *columns.values())
        record = await fetch_domain_record(conn, tenant.hostname)
    assert record is not None
    await RecordStore(redis_client).put_domain(record)

    async def stale() -> bool:
        found, cached = edge.resolver.domains.get(domain_key(tenant.hostname))
        return found and cached is not None and cached.version < record.version

    assert not await eventually(stale, lambda s: not s, timeout=5, interval=0.01)
    return record


async def test_plain_redirect_and_unknown_path(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, _ = edge_client
    link = await add_link(db, redis_client, tenant, url="https://example.com/a")
    answer = await visit(client, tenant, link.path)
    assert answer.status == 302
    assert answer.headers["Location"] == "https://example.com/a"
    # Case folded on a case-insensitive domain; percent-decoded; Host with a port.
    again = await client.get(f"/{link.path.upper()}", allow_redirects=False,
                             headers={"Host": f"{tenant.hostname.upper()}:8080"})
    assert again.status == 302
    missing = await visit(client, tenant, "no-such-path")
    assert missing.status == 404
    assert "text/html" in missing.headers["Content-Type"]
    unknown_host = await client.get("/x", headers={"Host": "nowhere.invalid"},
                                    allow_redirects=False)
    assert unknown_host.status == 404


async def test_redirect_types_link_then_domain(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, edge = edge_client
    for status in (301, 302, 307, 308):
        link = await add_link(db, redis_client, tenant, redirect_type=status)
        assert (await visit(client, tenant, link.path)).status == status
    await set_domain(db, redis_client, tenant, edge, redirect_type=301)
    plain = await add_link(db, redis_client, tenant)
    assert (await visit(client, tenant, plain.path)).status == 301


async def test_archived_deleted_and_not_found_redirect(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, edge = edge_client
    archived = await add_link(db, redis_client, tenant, archived=True,
                              expires_at=None, password_hash=hash_password("pw"))
    assert (await visit(client, tenant, archived.path)).status == 404
    deleted = await add_link(db, redis_client, tenant)
    await RecordStore(redis_client).delete_link(
        tenant.hostname, deleted.path.lower(), link_id=deleted.link_id,
        domain_id=tenant.domain_id, version=deleted.version + 1000)
    assert (await visit(client, tenant, deleted.path)).status == 404
    await set_domain(db, redis_client, tenant, edge, not_found_redirect="https://example.com/404")
    for path in (archived.path, deleted.path, "nothing-here"):
        answer = await visit(client, tenant, path)
        assert answer.status == 302
        assert answer.headers["Location"] == "https://example.com/404"


async def test_expiry_by_date_and_clicks_limit(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, _ = edge_client
    past = datetime.now(UTC) - timedelta(minutes=1)
    gone = await add_link(db, redis_client, tenant, expires_at=past)
    assert (await visit(client, tenant, gone.path)).status == 410
    gone_to = await add_link(db, redis_client, tenant, expires_at=past,
                             expired_url="https://example.com/expired",
                             password_hash=hash_password("pw"))  # expiry comes first
    answer = await visit(client, tenant, gone_to.path)
    assert (answer.status, answer.headers["Location"]) == (302, "https://example.com/expired")

    limited = await add_link(db, redis_client, tenant, clicks_limit=3,
                             expired_url="https://example.com/used-up")
    statuses = [(await visit(client, tenant, limited.path)).headers["Location"]
                for _ in range(5)]
    assert statuses == ["https://example.com/landing"] * 3 + ["https://example.com/used-up"] * 2


async def test_password_form_cookie_and_attempt_limit(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, _ = edge_client
    link = await add_link(db, redis_client, tenant, password_hash=hash_password("s3cret"),
                          url="https://example.com/private")
    form = await visit(client, tenant, link.path)
    assert form.status == 200
    assert '<form method="post"' in await form.text()
    headers = {"Host": tenant.hostname}
    wrong = await client.post(f"/{link.path}", data={"password": "nope"}, headers=headers,
                              allow_redirects=False)
    assert wrong.status == 403
    right = await client.post(f"/{link.path}", data={"password": "s3cret"}, headers=headers,
                              allow_redirects=False)
    assert right.status == 303
    cookie = right.cookies[f"lh_unlock_{link.link_id}"]
    assert "s3cret" not in cookie.value
    assert cookie["httponly"]
    unlocked = await visit(client, tenant, link.path)
    assert unlocked.status == 302
    assert unlocked.headers["Location"] == "https://example.com/private"
    # A forged cookie does not unlock.
    client.session.cookie_jar.clear()
    forged = await visit(client, tenant, link.path,
                         cookies={f"lh_unlock_{link.link_id}": f"{link.link_id}.9999999999.00"})
    assert forged.status == 200
    # Attempts are limited per link and client (10 per window; 2 used above).
    statuses = []
    for _ in range(10):
        attempt = await client.post(f"/{link.path}", data={"password": "guess"},
                                    headers=headers, allow_redirects=False)
        statuses.append(attempt.status)
    assert statuses[:8] == [403] * 8
    assert statuses[8:] == [429, 429]


async def test_device_then_region_then_country_targeting_by_header(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, _ = edge_client
    link = await add_link(
        db, redis_client, tenant, url="https://example.com/default",
        iphone_url="https://example.com/ios", android_url="https://example.com/android",
        countries={"DE": "https://example.com/de", "US": "https://example.com/us"},
        regions={"US-CA": "https://example.com/california"},
    )

    async def where(ua: str, **geo: str) -> str:
        answer = await visit(client, tenant, link.path, headers={"User-Agent": ua, **geo})
        return str(answer.headers["Location"])

    assert await where(IPHONE, **{"CF-IPCountry": "DE"}) == "https://example.com/ios"
    assert await where(ANDROID) == "https://example.com/android"
    assert await where(DESKTOP, **{"CF-IPCountry": "US", "CF-Region-Code": "CA"}) == \
        "https://example.com/california"
    assert await where(DESKTOP, **{"CF-IPCountry": "US", "CF-Region-Code": "NY"}) == \
        "https://example.com/us"
    assert await where(DESKTOP, **{"CF-IPCountry": "de"}) == "https://example.com/de"
    assert await where(DESKTOP, **{"CF-IPCountry": "XX"}) == "https://example.com/default"
    assert await where(DESKTOP) == "https://example.com/default"  # 127.0.0.1: no country


async def test_edge_headers_ignored_from_untrusted_peers(
    migrated: Any, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    client, _ = await start(settings_for(tmp_path, clicks_topic=topic, geo_headers="cloudflare",
                                         trusted_proxies=["10.9.9.0/24"]))
    try:
        link = await add_link(db, redis_client, tenant,
                              countries={"DE": "https://example.com/de"})
        answer = await visit(client, tenant, link.path,
                             headers={"CF-IPCountry": "DE", "X-Forwarded-For": "81.169.145.1"})
        assert answer.headers["Location"] == "https://example.com/landing"
    finally:
        await client.close()


async def test_country_out_of_the_box_and_from_a_maxmind_database(
    migrated: Any, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    link = await add_link(db, redis_client, tenant,
                          countries={"US": "https://example.com/us",
                                     "DE": "https://example.com/de"},
                          regions={"DE-BY": "https://example.com/bavaria"})
    proxied = {"trusted_proxies": ["127.0.0.1/32"]}
    # No header source, no database: the RIR data shipped in the wheel (8.8.8.8 is US).
    bundled, _ = await start(settings_for(tmp_path, clicks_topic=topic, **proxied))
    try:
        answer = await visit(bundled, tenant, link.path,
                             headers={"X-Forwarded-For": "203.0.113.9, 8.8.8.8"})
        assert answer.headers["Location"] == "https://example.com/us"
    finally:
        await bundled.close()
    # A MaxMind-format City database gives country and region.
    database = tmp_path / "city.mmdb"
    write_mmdb(database, {"198.51.100.0/24": ("DE", "BY"), "192.0.2.0/24": ("DE", "HH")})
    mmdb, _ = await start(settings_for(tmp_path, clicks_topic=topic, geoip_database=database,
                                       **proxied))
    try:
        for ip, expected in (("198.51.100.7", "https://example.com/bavaria"),
                             ("192.0.2.7", "https://example.com/de"),
                             ("8.8.8.8", "https://example.com/landing")):
            answer = await visit(mmdb, tenant, link.path, headers={"X-Forwarded-For": ip})
            assert answer.headers["Location"] == expected, ip
    finally:
        await mmdb.close()


def write_mmdb(path: Path, networks: dict[str, tuple[str, str]]) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet  # type: ignore[import-untyped]

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    for network, (country, region) in networks.items():
        writer.insert_network(IPSet([network]), {
            "country": {"iso_code": country},
            "subdivisions": [{"iso_code": region}],
        })
    writer.to_db_file(str(path))


async def test_split_utm_query_and_skip_qs(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, _ = edge_client
    split = await add_link(db, redis_client, tenant, url="https://example.com/a",
                           split_url="https://example.com/b", split_percent=50)
    sides: dict[str, set[str]] = {}
    for i in range(40):
        ua = f"{DESKTOP} visitor-{i}"
        for _ in range(2):  # the same visitor twice: the same side
            answer = await visit(client, tenant, split.path, headers={"User-Agent": ua})
            sides.setdefault(ua, set()).add(answer.headers["Location"])
    assert all(len(seen) == 1 for seen in sides.values())
    landed = {next(iter(seen)) for seen in sides.values()}
    assert landed == {"https://example.com/a", "https://example.com/b"}

    utm = await add_link(db, redis_client, tenant, url="https://example.com/p?x=1#top",
                         utm_source="news", utm_campaign="spring")
    answer = await client.get(f"/{utm.path}?ref=tw&q=a%20b", allow_redirects=False,
                              headers={"Host": tenant.hostname})
    assert answer.headers["Location"] == (
        "https://example.com/p?x=1&utm_source=news&utm_campaign=spring&ref=tw&q=a%20b#top")
    skip = await add_link(db, redis_client, tenant, url="https://example.com/s", skip_qs=True)
    answer = await client.get(f"/{skip.path}?ref=tw", headers={"Host": tenant.hostname},
                              allow_redirects=False)
    assert answer.headers["Location"] == "https://example.com/s"


async def test_cloaking_frames_the_escaped_destination(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, _ = edge_client
    link = await add_link(db, redis_client, tenant, cloaking=True, title='<b>"T"</b>',
                          url='https://example.com/x?a=1&b="><script>alert(1)</script>')
    answer = await visit(client, tenant, link.path)
    assert answer.status == 200
    body = await answer.text()
    assert "<iframe" in body and "<script>" not in body and "<b>" not in body


async def test_location_cannot_carry_injected_lines(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, _ = edge_client
    link = await add_link(db, redis_client, tenant,
                          url="https://example.com/a\r\nSet-Cookie: evil=1\r\n\r\nbody")
    answer = await client.get(f"/{link.path}?x=%0d%0aX-Evil:%201", allow_redirects=False,
                              headers={"Host": tenant.hostname})
    assert answer.status == 302
    assert "evil" not in answer.cookies
    assert "X-Evil" not in answer.headers
    location = answer.headers["Location"]
    assert "\r" not in location and "\n" not in location
    assert location.startswith("https://example.com/a%0D%0ASet-Cookie:%20evil=1")


async def test_root_robots_health_and_metrics_cannot_be_shadowed(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, edge = edge_client
    for path in ("health", "metrics", "robots.txt"):
        await add_link(db, redis_client, tenant, path=path, url="https://example.com/shadow")
    assert (await visit(client, tenant, "")).status == 404
    await set_domain(db, redis_client, tenant, edge, root_redirect="https://example.com/home",
                     robots="disallow")
    root = await visit(client, tenant, "")
    assert (root.status, root.headers["Location"]) == (302, "https://example.com/home")
    robots = await visit(client, tenant, "robots.txt")
    assert robots.status == 200 and "Disallow: /" in await robots.text()
    await set_domain(db, redis_client, tenant, edge, robots="noindex")
    link = await add_link(db, redis_client, tenant)
    answer = await visit(client, tenant, link.path)
    assert answer.headers["X-Robots-Tag"] == "noindex"
    assert "Allow: /" in await (await visit(client, tenant, "robots.txt")).text()
    health = await visit(client, tenant, "health")
    assert health.status == 200
    assert (await health.json())["checks"]["redis"] is True
    metrics = await visit(client, tenant, "metrics")
    assert metrics.status == 200
    text = await metrics.text()
    assert "linkhop_click_events_dropped_total 0" in text
    assert "linkhop_redirect_responses_total" in text


async def test_one_click_event_per_visit_with_privacy_settings(
    edge_client: tuple[Client, Edge], db: asyncpg.Pool, redis_client: aioredis.Redis,
    tenant: Tenant,
) -> None:
    client, edge = edge_client
    captured: list[Any] = []
    edge.emitter.emit = captured.append  # type: ignore[method-assign,assignment]
    link = await add_link(db, redis_client, tenant, utm_source="mail")
    headers = {"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)",
               "Referer": "https://ref.example/", "CF-IPCountry": "FR",
               "X-Forwarded-For": "81.169.145.1"}
    await visit(client, tenant, link.path, headers=headers)
    await set_domain(db, redis_client, tenant, edge, hide_referer=True, hide_visitor_ip=True)
    await visit(client, tenant, link.path, headers={**headers, "User-Agent": DESKTOP})
    first, second = (ClickEvent.from_bytes(edge.emitter.encoder.encode(d)) for d in captured)
    assert first.event_id != second.event_id
    assert (first.link_id, first.domain_id, first.path, first.status) == (
        link.link_id, tenant.domain_id, link.path, 302)
    assert (first.ip, first.referer, first.country, first.bot) == (
        "81.169.145.1", "https://ref.example/", "FR", True)
    assert first.utm_source == "mail" and first.visitor and first.outcome == "redirect"
    assert (second.ip, second.referer, second.bot) == (None, None, False)
    assert time.time() - first.ts.timestamp() < 60
