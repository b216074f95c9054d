"""Fixtures of the fault tests: a second, independent local stack (``faults`` instance:
``var/stack-faults``, ports +100) that these tests may stop, kill and flush, so the
shared stack other tests use at the same time is never touched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from deploy.local import stack
from services.management.app import create_app as management_app
from services.management.settings import Settings as ManagementSettings
from shared.kafka_admin import ensure_topics
from shared.migrate import migrate
from tests.conftest import Tenant, make_tenant, serve
from tests.faults.support import FaultStack

FAULTS_INSTANCE = "faults"
FAULTS_DATABASE = "linkhop_faults"


@pytest.fixture(scope="session")
def fault_stack_servers() -> Iterator[FaultStack]:
    """Starts the faults instance (its own servers), stops it at the end of the run."""
    paths = stack.StackPaths(stack.repo_root(), instance=FAULTS_INSTANCE)
    assert paths.kafka_port != stack.StackPaths(stack.repo_root()).kafka_port
    was_running = all(stack.status(paths).values())
    urls = stack.start(paths)
    database_url = stack.ensure_database(paths, FAULTS_DATABASE)
    yield FaultStack(paths, database_url, urls.redis_url, urls.kafka_bootstrap)
    if not was_running:
        stack.stop(paths)


@pytest.fixture(scope="session")
async def fault_stack(fault_stack_servers: FaultStack) -> FaultStack:
    await migrate(fault_stack_servers.database_url)
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
async def fault_topic(fault_stack: FaultStack) -> str:
    topic = f"faults-clicks-{uuid.uuid4().hex[:10]}"
    await ensure_topics(fault_stack.kafka_bootstrap, [topic])
    return topic


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
