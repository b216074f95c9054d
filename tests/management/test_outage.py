"""Postgres outages: the management service starts without it, answers a JSON 503 with
Retry-After within a bounded time (never a 500, never a hang), and recovers by itself.
Postgres is reached through a local TCP forwarder the test opens and closes, so the
shared Postgres is never stopped."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from services.management.app import create_app
from services.management.settings import Settings
from tests.conftest import StackEnv, Tenant, serve

pytestmark = pytest.mark.stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Forwarder:
    """127.0.0.1:<port> -> target while open; connection refused while closed;
    ``hang=True`` accepts connections and never answers (a black hole)."""

    def __init__(self, target_host: str, target_port: int, *, hang: bool = False) -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._hang = hang
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._hang:
                await asyncio.sleep(3600)
            up_reader, up_writer = await asyncio.open_connection(*self._target)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError):
                writer.close()


def via(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2
                                     else host))


@pytest.fixture
async def forwarder(migrated: StackEnv) -> AsyncIterator[Forwarder]:
    target = urlsplit(migrated.database_url)
    proxy = Forwarder(target.hostname or "127.0.0.1", target.port or 5432)
    yield proxy
    await proxy.close()


async def test_starts_without_postgres_answers_503_and_recovers(
    migrated: StackEnv, tenant: Tenant, forwarder: Forwarder
) -> None:
    settings = Settings(database_url=via(migrated.database_url, forwarder.port))
    api = await serve(create_app(settings))  # Postgres unreachable: must still start
    try:
        headers = {"Authorization": tenant.key}
        for method, path in (("GET", "/api/domains"), ("GET", f"/domains/{tenant.domain_id}"),
                             ("POST", "/api/keys"), ("POST", "/links")):
            started = time.monotonic()
            answer = await api.request(method, path, headers=headers, json={"kind": "public"})
            assert time.monotonic() - started < 5
            assert answer.status == 503, (method, path, await answer.text())
            assert answer.content_type == "application/json"
            body = await answer.json()
            assert body["success"] is False and body["code"] == "service_unavailable"
            assert int(answer.headers["Retry-After"]) > 0
            assert "X-RateLimit-Limit" in answer.headers
        assert (await api.get("/health")).status == 503
        assert (await api.get("/openapi.json")).status == 200  # needs no database

        await forwarder.open()  # Postgres is back: no restart needed
        answer = await api.get("/api/domains", headers=headers)
        assert answer.status == 200, await answer.text()
        assert (await api.get("/health")).status == 200

        await forwarder.close()  # and away again, with connections in the pool
        answer = await api.get("/api/domains", headers=headers)
        assert answer.status == 503
    finally:
        await api.close()


async def test_a_hanging_postgres_is_a_bounded_503(migrated: StackEnv, tenant: Tenant) -> None:
    target = urlsplit(migrated.database_url)
    black_hole = Forwarder(target.hostname or "127.0.0.1", target.port or 5432, hang=True)
    await black_hole.open()
    settings = Settings.model_validate({
        "LINKHOP_DATABASE_URL": via(migrated.database_url, black_hole.port),
        "db_connect_timeout": 1,
    })
    try:
        started = time.monotonic()
        api = await serve(create_app(settings))
        try:
            answer = await api.get("/api/domains", headers={"Authorization": tenant.key})
            elapsed = time.monotonic() - started
            assert answer.status == 503 and "Retry-After" in answer.headers
            assert elapsed < 6, elapsed
        finally:
            await api.close()
    finally:
        await black_hole.close()
