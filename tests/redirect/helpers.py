"""Helpers of the redirect tests: links made directly in Postgres and Redis (never
through the management API), app settings with a private spool, closed ports, and the
service as a process of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from deploy.local import processes
from services.redirect.app import create_app
from services.redirect.edge import Edge
from services.redirect.keys import EDGE
from services.redirect.settings import Settings
from shared.linkrecord import LinkRecord, RecordStore, path_key_for
from shared.record_repository import fetch_link_record
from tests.conftest import StackEnv, Tenant, serve, unique
from tests.helpers import eventually, spawned_workers

Client = TestClient[web.Request, web.Application]

_LINK_COLUMNS = frozenset({
    "original_url", "title", "expires_at", "expired_url", "password_hash", "redirect_type",
    "clicks_limit", "android_url", "iphone_url", "split_url", "split_percent", "utm_source",
    "utm_medium", "utm_campaign", "utm_term", "utm_content", "skip_qs", "cloaking", "archived",
})


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SERVICE_START_TIMEOUT_S = 30.0


@contextlib.contextmanager
def redirect_process(stack: StackEnv, env: Mapping[str, str], *,
                     output: IO[bytes] | int = subprocess.DEVNULL,
                     preexec_fn: Callable[[], None] | None = None,
                     ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m services.redirect`` on a free loopback port, against the test stack,
    with ``env`` on top; yielded once healthy, with its URL. Stopped at the end (SIGTERM,
    SIGKILL after 15 s), and so are any workers of its that outlived it."""
    port = processes.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.redirect"],
        env={**os.environ, **stack.env(), "LINKHOP_REDIRECT_PORT": str(port), **env},
        stdout=output, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_healthy(url, timeout=SERVICE_START_TIMEOUT_S, process=process)
        yield process, url
    finally:
        workers = spawned_workers(process.pid)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pid in workers:
            if processes.pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"spool_dir": tmp_path / "spool", "secret": "test-secret"}
    values.update(overrides)
    return Settings(**values)


async def wait_subscribed(edge: Edge) -> None:
    """Until the edge listens on the change channel (announcements reach its cache)."""

    async def subscribed() -> bool:
        return edge.subscribed.is_set()

    await eventually(subscribed, bool, timeout=5)


async def start(settings: Settings) -> tuple[Client, Edge]:
    app = create_app(settings)
    client = await serve(app)
    return client, app[EDGE]


async def insert_link(
    db: asyncpg.Pool,
    tenant: Tenant,
    *,
    path: str | None = None,
    url: str = "https://example.com/landing",
    case_sensitive: bool = False,
    countries: dict[str, str] | None = None,
    regions: dict[str, str] | None = None,
    **columns: Any,
) -> LinkRecord:
    """A link row (and its targeting rows) in Postgres; returns its compiled record."""
    path = path or unique("p")
    path_key = path_key_for(path, case_sensitive)
    unknown = set(columns) - _LINK_COLUMNS
    assert not unknown, unknown
    columns["original_url"] = url
    names = ["id_string", "domain_id", "team_id", "path", "path_key", *columns]
    values = [unique("id"), tenant.domain_id, tenant.team_id, path, path_key, *columns.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    async with db.acquire() as conn:
        link_id = await conn.fetchval(
            f"INSERT INTO links ({', '.join(names)}) VALUES ({placeholders}) RETURNING id",
            *values,
        )
        for country, target in (countries or {}).items():
            await conn.execute(
                "INSERT INTO link_countries (link_id, country, original_url) VALUES ($1,$2,$3)",
                link_id, country, target,
            )
        for region, target in (regions or {}).items():
            await conn.execute(
                "INSERT INTO link_regions (link_id, country, region, original_url)"
                " VALUES ($1, $2, $3, $4)",
                link_id, region[:2], region, target,
            )
        record = await fetch_link_record(conn, tenant.domain_id, path_key)
    assert record is not None
    return record


async def add_link(
    db: asyncpg.Pool, redis_client: aioredis.Redis, tenant: Tenant, **fields: Any
) -> LinkRecord:
    """A link in Postgres and written through to Redis, as the management service does."""
    record = await insert_link(db, tenant, **fields)
    await RecordStore(redis_client).put_link(tenant.hostname, record.path.lower(), record)
    return record


async def update_link(
    db: asyncpg.Pool, redis_client: aioredis.Redis, tenant: Tenant, record: LinkRecord,
    **columns: Any,
) -> LinkRecord:
    """Changes a link's columns in Postgres with a new version and writes it through."""
    assert set(columns) <= _LINK_COLUMNS
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
    async with db.acquire() as conn:
        await conn.execute(
            f"UPDATE links SET {sets}, record_version = nextval('record_version_seq')"
            " WHERE id = $1",
            record.link_id, *columns.values(),
        )
        fresh = await fetch_link_record(conn, tenant.domain_id, record.path.lower())
    assert fresh is not None
    await RecordStore(redis_client).put_link(tenant.hostname, record.path.lower(), fresh)
    return fresh


async def visit(client: Client, tenant: Tenant, path: str, **kwargs: Any) -> Any:
    headers = {"Host": tenant.hostname, **kwargs.pop("headers", {})}
    return await client.get(f"/{path}", headers=headers, allow_redirects=False, **kwargs)
