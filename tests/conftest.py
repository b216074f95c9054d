"""Fixtures: the real stack (started or reused once per run), a migrated test database,
and per-test isolation by fresh teams, domains, API keys and Kafka topics."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import settings as hypothesis_settings

from deploy.local import stack
from services.management.domains import repository as domain_repo
from shared import apikey_repository
from shared.linkrecord import RecordStore
from shared.migrate import migrate
from shared.record_repository import fetch_domain_record
from shared.resources import create_redis
from shared.settings import CommonSettings

TEST_DATABASE = "linkhop_test"

# CI runs must be repeatable: the same examples every run (derandomized). Local runs
# keep exploring new examples, which is where new counterexamples are found.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@dataclass(frozen=True)
class StackEnv:
    database_url: str
    redis_url: str
    kafka_bootstrap: str

    def env(self) -> dict[str, str]:
        return {
            "LINKHOP_DATABASE_URL": self.database_url,
            "LINKHOP_REDIS_URL": self.redis_url,
            "LINKHOP_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
        }


@pytest.fixture(scope="session")
def stack_env() -> Iterator[StackEnv]:
    """Starts (or reuses) the local stack; a test database on it, migrated."""
    paths = stack.StackPaths(root=stack.repo_root())
    external = stack.external_urls() is not None
    # A run that starts the stack stops it again, so CI leaves no server behind; a run
    # that found it running (make dev, another test run) leaves it running.
    was_running = external or all(stack.status(paths).values())
    urls = stack.start(paths)
    database_url = urls.database_url
    if not os.environ.get("LINKHOP_DATABASE_URL"):
        database_url = stack.ensure_database(paths, TEST_DATABASE)
    env = StackEnv(database_url, urls.redis_url, urls.kafka_bootstrap)
    saved = {k: os.environ.get(k) for k in env.env()}
    os.environ.update(env.env())  # Settings() built by tests and services see the stack
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if not was_running:
        stack.stop(paths)


@pytest.fixture(scope="session")
async def migrated(stack_env: StackEnv) -> StackEnv:
    await migrate(stack_env.database_url)
    return stack_env


@pytest.fixture(scope="session")
def settings(migrated: StackEnv) -> CommonSettings:
    return CommonSettings()


@pytest.fixture(scope="session")
async def db(migrated: StackEnv) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(migrated.database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis_client(settings: CommonSettings) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(settings)
    yield client
    await client.aclose()


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Tenant:
    """A fresh team with one domain and a private key: what most tests act as."""

    team_id: int
    domain_id: int
    hostname: str
    key: str


async def make_tenant(
    db: asyncpg.Pool, redis_client: aioredis.Redis, *, case_sensitive: bool = False
) -> Tenant:
    hostname = f"{unique('d')}.test.linkhop.localhost"
    async with db.acquire() as conn:
        team_id = await domain_repo.create_team(conn, unique("team"))
        domain = await domain_repo.create_domain(
            conn, team_id=team_id, hostname=hostname, unicode_hostname=hostname
        )
        if case_sensitive:
            await conn.execute(
                "UPDATE domains SET case_sensitive = true,"
                " record_version = nextval('record_version_seq') WHERE id = $1",
                domain["id"],
            )
        key, _ = await apikey_repository.create_key(conn, team_id=team_id, kind="private")
        record = await fetch_domain_record(conn, hostname)
    assert record is not None
    await RecordStore(redis_client).put_domain(record)
    return Tenant(team_id=team_id, domain_id=domain["id"], hostname=hostname, key=key)


@pytest.fixture
async def tenant(db: asyncpg.Pool, redis_client: aioredis.Redis) -> Tenant:
    return await make_tenant(db, redis_client)


async def serve(app: web.Application) -> TestClient[web.Request, web.Application]:
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
def topic() -> str:
    """A Kafka topic of this test's own (auto-created on first use)."""
    return unique("clicks-")
