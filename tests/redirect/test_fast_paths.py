"""The edge's speed devices keep its behaviour: the regex-free catch-all route, the
answer memo and its invalidation, the click encoder's fragment memos, the MGET batcher's
in-flight limit, and the one-key lookup when the domain is cached."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.redirect import clicks
from services.redirect.app import create_app
from services.redirect.batcher import LookupConnection, MGetBatcher
from services.redirect.cache import AnswerMemo
from services.redirect.clicks import Encoder
from services.redirect.handlers import redirect, unlock
from services.redirect.status import health
from shared.events import ClickEvent
from shared.linkrecord import link_key
from tests.conftest import StackEnv, Tenant
from tests.helpers import eventually
from tests.redirect.helpers import (
    add_link,
    settings_for,
    start,
    update_link,
    visit,
    wait_subscribed,
)


async def _route(app: web.Application, method: str, path: str) -> Any:
    match = await app.router.resolve(make_mocked_request(method, path, app=app))
    return match


async def test_catch_all_takes_every_other_path_and_method_rules_stay(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path))
    assert (await _route(app, "GET", "/health")).handler is health
    for path in ("/", "/x", "/a/b%20c", "/robots.txt/more", "/health/x"):
        match = await _route(app, "GET", path)
        assert match.handler is redirect and dict(match) == {}
        assert (await _route(app, "HEAD", path)).handler is redirect
        assert (await _route(app, "POST", path)).handler is unlock
    refused = await _route(app, "PUT", "/x")
    assert isinstance(refused.http_exception, web.HTTPMethodNotAllowed)
    assert refused.http_exception.allowed_methods == {"GET", "HEAD", "POST"}


def test_answer_memo_expiry_epoch_and_bound() -> None:
    memo: AnswerMemo[str] = AnswerMemo(maxsize=2)
    now = time.monotonic()
    memo.put(("h", "/a"), "a", now + 60, epoch=1)
    assert memo.get(("h", "/a"), 1) == "a"
    assert memo.get(("h", "/a"), 2) is None  # an invalidation since: never answered
    assert memo.get(("other", "/a"), 1) is None
    memo.put(("h", "/old"), "old", now - 1, epoch=1)
    assert memo.get(("h", "/old"), 1) is None  # its records' cache entries expired
    memo.put(("h", "/c"), "c", now + 60, epoch=1)  # full: cleared first
    assert len(memo) == 1 and memo.get(("h", "/c"), 1) == "c"


def test_encoder_fragments_are_per_visitor_link_and_path_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clicks, "_FRAGMENTS", 3)
    encoder = Encoder(b"k" * 32, truncate_hidden_ip=True)
    links = [clicks.link_facts(i, 9, 302, None, f"s{i}", None, None, "redirect")
             for i in range(4)]
    visitors = [(f"10.0.0.{i}", f"ua {i}", None, "DE", None, i % 2 == 0) for i in range(4)]
    for _ in range(2):  # the second pass is answered from (and clears) the memos
        for i in range(4):
            for j in range(4):
                event = ClickEvent.from_bytes(encoder.encode(
                    (1_700_000_000.5, i, f"p{i}", links[i], visitors[j])))
                assert (event.link_id, event.path, event.utm_source) == (i, f"p{i}", f"s{i}")
                assert event.user_agent == f"ua {j}"
                assert event.ip == ("10.0.0.0" if j % 2 == 0 else f"10.0.0.{j}")
    assert len(encoder._paths) <= 3 and len(encoder._visitors) <= 3


class _Wire(asyncio.Transport):
    """The far end of a :class:`LookupConnection`: keeps what is written; the test
    answers through ``data_received``, in RESP, as Redis would."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[list[str]] = []
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        parts = bytes(data).split(b"\r\n")
        self.sent.append([part.decode() for part in parts[4::2]])  # MGET's keys

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


def _array(*values: bytes | None) -> bytes:
    parts = [b"*%d\r\n" % len(values)]
    parts += [b"$-1\r\n" if v is None else b"$%d\r\n%s\r\n" % (len(v), v) for v in values]
    return b"".join(parts)


class _Connections:
    """The batcher's ``connect``: a new :class:`LookupConnection` on a new wire each call."""

    def __init__(self) -> None:
        self.made: list[tuple[LookupConnection, _Wire]] = []

    async def __call__(self) -> LookupConnection:
        connection, wire = LookupConnection(), _Wire()
        connection.connection_made(wire)
        self.made.append((connection, wire))
        return connection


async def _settle() -> None:
    for _ in range(5):  # the flush (call_soon), the connection, the send
        await asyncio.sleep(0)


async def test_batcher_limits_batches_in_flight_and_coalesces_the_rest() -> None:
    connections = _Connections()
    batcher = MGetBatcher(connections, max_lookups=3, max_in_flight=1, timeout=5)
    first = batcher.mget(["a"])
    await _settle()
    connection, wire = connections.made[0]
    assert wire.sent == [["a"]]
    later = [batcher.mget([f"k{i}", f"f{i}"]) for i in range(4)]  # while "a" is out
    await _settle()
    assert wire.sent == [["a"]]  # held: one batch in flight at most
    connection.data_received(_array(b"A"))
    assert await first == [b"A"]
    # The held lookups leave together, max_lookups (3) per batch, as soon as a slot frees.
    assert wire.sent[1] == ["k0", "f0", "k1", "f1", "k2", "f2"]
    reply = _array(b"K0", None, b"K1", b"F1", b"K2", b"F2")
    connection.data_received(reply[:9])  # replies may arrive in pieces
    connection.data_received(reply[9:])
    assert [await f for f in later[:3]] == [[b"K0", None], [b"K1", b"F1"], [b"K2", b"F2"]]
    assert wire.sent[2] == ["k3", "f3"]
    connection.data_received(b"-NOPERM this user has no permissions\r\n")
    with pytest.raises(RedisConnectionError):  # an error reply counts as Redis failing
        await later[3]
    assert (batcher.batches, batcher.lookups) == (3, 5)
    await batcher.close()


async def test_batcher_reconnects_after_a_lost_connection_and_a_timeout() -> None:
    connections = _Connections()
    batcher = MGetBatcher(connections, max_lookups=10, max_in_flight=4, timeout=0.05)
    lost = [batcher.mget(["a"]), batcher.mget(["b"])]
    await _settle()
    connection, wire = connections.made[0]
    assert wire.sent == [["a", "b"]]  # one batch
    connection.connection_lost(None)
    for future in lost:
        with pytest.raises(RedisConnectionError):
            await future
    silent = batcher.mget(["c"])  # on a new connection, which never answers
    await _settle()
    assert len(connections.made) == 2 and connections.made[1][1].sent == [["c"]]
    with pytest.raises(RedisTimeoutError):
        await silent
    assert connections.made[1][1].aborted  # replies could no longer be matched: closed
    again = batcher.mget(["d"])
    await _settle()
    connections.made[2][0].data_received(_array(b"D"))
    assert await again == [b"D"]
    await batcher.close()


async def test_one_key_lookup_when_the_domain_is_cached_and_hot_answers_follow_changes(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    link = await add_link(db, redis_client, tenant, url="https://example.com/one")
    other = await add_link(db, redis_client, tenant, url="https://example.com/two")
    client, edge = await start(settings_for(tmp_path, clicks_topic=topic))
    try:
        await wait_subscribed(edge)
        assert (await visit(client, tenant, link.path)).status == 302  # domain now cached
        batcher = edge.resolver.batcher
        lookups, batches = batcher.lookups, batcher.batches
        answer = await visit(client, tenant, other.path.upper())  # case-folded
        assert answer.headers["Location"] == "https://example.com/two"
        assert (batcher.lookups, batcher.batches) == (lookups + 1, batches + 1)
        for _ in range(3):  # met again while cached: answered from the memo
            assert (await visit(client, tenant, link.path)).headers["Location"] == \
                "https://example.com/one"
        assert len(edge.answers) >= 1
        epoch = edge.resolver.epoch
        await update_link(db, redis_client, tenant, link, original_url="https://example.com/new")

        async def location() -> str | None:
            found: str | None = (await visit(client, tenant, link.path)).headers.get("Location")
            return found

        await eventually(location, lambda loc: loc == "https://example.com/new", timeout=5,
                         interval=0.01)
        assert edge.resolver.epoch > epoch
        # Unannounced (no PUBLISH): the memo entry ends with its records' cache TTL.
        silent = link.model_copy(update={"url": "https://example.com/silent",
                                         "version": link.version + 10**6})
        await redis_client.set(link_key(tenant.hostname, link.path.lower()),
                               silent.model_dump_json())
        started = time.monotonic()
        await eventually(location, lambda loc: loc == "https://example.com/silent",
                         timeout=5, interval=0.05)
        assert time.monotonic() - started <= edge.settings.cache_ttl.total_seconds() + 0.5
    finally:
        await client.close()

