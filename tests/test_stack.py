"""The local stack manager against the real servers: idempotent start, status, and that
PostgreSQL, Redis and Kafka really answer on their loopback ports.

Never stops the whole stack (other tests share it); only Redis does a stop/start round
trip, marked ``faults``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local import stack
from shared.settings import (
    CLICKS_TOPIC,
    LOCAL_KAFKA_PORT,
    LOCAL_POSTGRES_PORT,
    LOCAL_REDIS_PORT,
)

pytestmark = pytest.mark.stack

_ENV_PORTS = {
    "LINKHOP_DATABASE_URL": LOCAL_POSTGRES_PORT,
    "LINKHOP_REDIS_URL": LOCAL_REDIS_PORT,
    "LINKHOP_KAFKA_BOOTSTRAP": LOCAL_KAFKA_PORT,
}


def _points_at_local_stack(name: str, value: str) -> bool:
    target = value if "://" in value else f"kafka://{value.split(',')[0]}"
    parts = urlsplit(target)
    return parts.hostname in ("127.0.0.1", "localhost") and parts.port == _ENV_PORTS[name]


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[stack.StackPaths]:
    """The repo's stack, with LINKHOP_* cleared so ``start`` manages every server locally.

    Variables pointing at the local stack (as the session fixture sets them) are just
    cleared; pointing elsewhere means an external stack, where these tests do not apply.
    """

    for name in _ENV_PORTS:
        value = os.environ.get(name)
        if value and not _points_at_local_stack(name, value):
            pytest.skip(f"{name} points at an external server")
        monkeypatch.delenv(name, raising=False)
    yield stack.StackPaths(root=stack.repo_root())


def _redis_ping() -> bytes:
    with socket.create_connection(("127.0.0.1", LOCAL_REDIS_PORT), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_start_is_idempotent_and_fast_the_second_time(paths: stack.StackPaths) -> None:
    first = stack.start(paths)
    started = time.monotonic()
    second = stack.start(paths)
    elapsed = time.monotonic() - started
    assert second == first
    assert elapsed < 5.0, f"warm start took {elapsed:.1f} s"
    assert first == stack.StackUrls(
        database_url=f"postgresql://linkhop@127.0.0.1:{LOCAL_POSTGRES_PORT}/linkhop",
        redis_url=f"redis://127.0.0.1:{LOCAL_REDIS_PORT}/0",
        kafka_bootstrap=f"127.0.0.1:{LOCAL_KAFKA_PORT}",
    )
    assert stack.status(paths) == {"postgres": True, "redis": True, "kafka": True}


def test_repo_root_holds_pyproject() -> None:
    assert (stack.repo_root() / "pyproject.toml").is_file()


def test_kafka_command_names_the_instance_and_its_cores() -> None:
    root = stack.repo_root()
    plain = stack.kafka_command(stack.StackPaths(root), "start")
    assert plain[1:] == ["-m", "deploy.local.stack", "kafka-start", "--root", str(root)]
    pinned = stack.kafka_command(stack.StackPaths(root, "bench-kafka", port_offset=200),
                                 "kill", [1, 0])
    assert pinned[:3] == ["taskset", "-c", "0,1"]
    assert pinned[4:] == ["-m", "deploy.local.stack", "kafka-kill", "--root", str(root),
                          "--instance", "bench-kafka", "--port-offset", "200"]


def test_external_urls_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_PORTS:
        monkeypatch.delenv(name, raising=False)
    assert stack.external_urls() is None
    monkeypatch.setenv("LINKHOP_REDIS_URL", "redis://elsewhere:6379/0")
    urls = stack.external_urls()
    assert urls is not None
    assert urls.redis_url == "redis://elsewhere:6379/0"
    assert urls.kafka_bootstrap == f"127.0.0.1:{LOCAL_KAFKA_PORT}"


async def test_postgres_answers_and_databases_are_created(paths: stack.StackPaths) -> None:
    urls = stack.start(paths)
    conn = await asyncpg.connect(urls.database_url, timeout=5)
    try:
        assert await conn.fetchval("SELECT current_database()") == "linkhop"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SHOW max_connections") == "200"
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
    finally:
        await conn.close()

    name = "linkhop_stacktest"
    url = stack.ensure_database(paths, name)
    assert url == f"postgresql://linkhop@127.0.0.1:{LOCAL_POSTGRES_PORT}/{name}"
    assert stack.ensure_database(paths, name) == url  # idempotent
    conn = await asyncpg.connect(url, timeout=5)
    try:
        assert await conn.fetchval("SELECT current_database()") == name
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", name
        )
        assert owner == "linkhop"
    finally:
        await conn.close()


def test_redis_answers_ping(paths: stack.StackPaths) -> None:
    stack.start(paths)
    assert _redis_ping().startswith(b"+PONG")


async def test_kafka_has_clicks_topic_and_round_trips(paths: stack.StackPaths) -> None:
    urls = stack.start(paths)
    admin = AIOKafkaAdminClient(bootstrap_servers=urls.kafka_bootstrap)
    await admin.start()
    try:
        (clicks,) = await admin.describe_topics([CLICKS_TOPIC])
    finally:
        await admin.close()
    assert clicks["error_code"] == 0
    assert len(clicks["partitions"]) == 4
    assert all(p["leader"] >= 0 for p in clicks["partitions"])

    topic = f"stacktest-{uuid.uuid4().hex[:12]}"
    producer = AIOKafkaProducer(bootstrap_servers=urls.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=str(i).encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=urls.kafka_bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(received) < 10 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            received += [r.value for records in batches.values() for r in records if r.value]
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(f"m{i}".encode() for i in range(10))


@pytest.mark.faults
def test_redis_stop_start_round_trip(paths: stack.StackPaths) -> None:
    stack.start(paths)
    stack.stop_redis(paths)
    try:
        assert stack.status(paths)["redis"] is False
        with pytest.raises(OSError):
            _redis_ping()
        assert stack.status(paths)["postgres"] and stack.status(paths)["kafka"]
    finally:
        assert stack.start_redis(paths) == f"redis://127.0.0.1:{LOCAL_REDIS_PORT}/0"
    assert _redis_ping().startswith(b"+PONG")
    assert stack.status(paths)["redis"] is True
