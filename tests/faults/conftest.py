"""Fixtures of the fault tests: a second, independent local stack (``faults`` instance:
``var/stack-faults``, ports +100) that these tests may stop, kill and flush, so the
shared stack other tests use at the same time is never touched."""

from __future__ import annotations

import fcntl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from deploy.local import stack
from services.management.app import create_app as management_app
from services.management.settings import Settings as ManagementSettings
from shared.kafka_admin import ensure_topics
from shared.migrate import migrate
from tests.conftest import Tenant, make_tenant, serve
from tests.faults.support import FAULTS_INSTANCE, FaultStack, delete_topics

FAULT_TOPIC_PREFIX = "faults-clicks-"

FAULTS_DATABASE = "linkhop_faults"


@pytest.fixture(scope="session")
def fault_stack_servers() -> Iterator[FaultStack]:
    """Starts the faults instance (its own servers), stops it at the end of the run.

    One fault session at a time (a lock file): two would stop and kill each other's
    servers."""
    paths = stack.StackPaths(stack.repo_root(), instance=FAULTS_INSTANCE)
    assert paths.kafka_port != stack.StackPaths(stack.repo_root()).kafka_port
    paths.var.mkdir(parents=True, exist_ok=True)
    with (paths.var / "faults-session.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        was_running = all(stack.status(paths).values())
        urls = stack.start(paths)
        database_url = stack.ensure_database(paths, FAULTS_DATABASE)
        yield FaultStack(paths, database_url, urls.redis_url, urls.kafka_bootstrap)
        if not was_running:
            stack.stop(paths)


@pytest.fixture(scope="session")
async def fault_stack(fault_stack_servers: FaultStack) -> FaultStack:
    """A fresh database each session: migration files are edited in place while nothing
    is deployed, and an older copy of a schema would fail the services' queries."""
    url = fault_stack_servers.database_url
    parts = urlsplit(url)
    admin = await asyncpg.connect(parts._replace(path="/postgres").geturl(), timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{FAULTS_DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{FAULTS_DATABASE}"')
    finally:
        await admin.close()
    await migrate(url)
    # Topics of earlier sessions that ended before deleting them.
    await delete_topics(fault_stack_servers.kafka_bootstrap,
                        lambda name: name.startswith(FAULT_TOPIC_PREFIX))
    return fault_stack_servers


@pytest.fixture
def restore_servers(fault_stack: FaultStack) -> Iterator[FaultStack]:
    """Whatever a test stopped or killed is running again afterwards (for the next test)."""
    yield fault_stack
    stack.start(fault_stack.paths)


@pytest.fixture
async def fault_db(fault_stack: FaultStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(fault_stack.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def fault_redis(fault_stack: FaultStack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(fault_stack.redis_url, socket_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture
async def fault_tenant(fault_db: asyncpg.Pool, fault_redis: aioredis.Redis) -> Tenant:
    return await make_tenant(fault_db, fault_redis)


@pytest.fixture
async def fault_topic(fault_stack: FaultStack) -> AsyncIterator[str]:
    """A topic of the test's own, deleted afterwards: every partition left on the
    faults broker is loaded again at each of its restarts (hundreds of them made a
    restart several seconds longer, on the cores the services share)."""
    topic = f"{FAULT_TOPIC_PREFIX}{uuid.uuid4().hex[:10]}"
    await ensure_topics(fault_stack.kafka_bootstrap, [topic])
    yield topic
    await delete_topics(fault_stack.kafka_bootstrap, lambda name: name == topic)


@dataclass(frozen=True)
class Link:
    link_id: int
    id_string: str
    path: str
    original_url: str


async def create_link(
    fault_stack: FaultStack, db: asyncpg.Pool, tenant: Tenant, **fields: Any
) -> Link:
    """Creates a link through the management API (in process, on the faults stack)."""
    settings = ManagementSettings(
        database_url=fault_stack.database_url,
        redis_url=fault_stack.redis_url,
        kafka_bootstrap=fault_stack.kafka_bootstrap,
    )
    client = await serve(management_app(settings))
    try:
        body = {"domain": tenant.hostname, "originalURL": "https://example.com/landing"} | fields
        answer = await client.post("/links", json=body, headers={"Authorization": tenant.key})
        assert answer.status == 200, await answer.text()
        link = await answer.json()
    finally:
        await client.close()
    link_id = await db.fetchval("SELECT id FROM links WHERE id_string = $1", link["idString"])
    assert link_id is not None
    return Link(int(link_id), str(link["idString"]), str(link["path"]),
                str(link["originalURL"]))
