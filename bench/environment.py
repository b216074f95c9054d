"""Everything a benchmark run stands on, started in order and stopped in reverse.

The shared local stack (Postgres, Kafka; started only if it is not running, and then
stopped again at the end), a fresh ``linkhop_bench`` database, a private Redis, and
the topics of this run. Servers under test are started by the sections themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import redis as redis_sync

from bench import servers
from deploy.local import stack
from shared.kafka_admin import ensure_topics
from shared.migrate import migrate
from shared.settings import CommonSettings

log = logging.getLogger("bench")

BENCH_DATABASE = "linkhop_bench"
REDIS_PORT = 28379
REDIRECT_PORT = 28080
MANAGEMENT_PORT = 28081
STATS_PORTS = (28082, 28083)
NGINX_PORT = 28090
BARE_PORT = 28091


@dataclass
class BenchEnv:
    paths: stack.StackPaths
    var: Path
    database_url: str
    redis_url: str
    kafka_bootstrap: str
    stamp: str
    redis: servers.Spawned | None = None
    _cleanups: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    @property
    def redis_port(self) -> int:
        return REDIS_PORT

    def settings(self, clicks_topic: str | None = None) -> CommonSettings:
        """Connection settings pointing at the bench database, Redis and Kafka."""
        return CommonSettings(database_url=self.database_url, redis_url=self.redis_url,
                              kafka_bootstrap=self.kafka_bootstrap,
                              clicks_topic=clicks_topic or "clicks")

    def service_env(self, **extra: str) -> dict[str, str]:
        return {
            "LINKHOP_DATABASE_URL": self.database_url,
            "LINKHOP_REDIS_URL": self.redis_url,
            "LINKHOP_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "LINKHOP_LOG_LEVEL": "WARNING",
            **extra,
        }

    def topic(self, name: str) -> str:
        """A topic of this run (created now, deleted at the end)."""
        topic = f"bench-{name}-{self.stamp}"
        asyncio.run(ensure_topics(self.kafka_bootstrap, [topic]))
        self.on_close(f"delete topic {topic}", lambda: asyncio.run(delete_topic(
            self.kafka_bootstrap, topic)))
        return topic

    def on_close(self, what: str, action: Callable[[], None]) -> None:
        self._cleanups.append((what, action))

    def start_redis(self) -> None:
        self.redis = servers.start_redis(self.var, REDIS_PORT)

    def stop_redis(self) -> None:
        """Saves the data set (so a restart keeps the links), then stops Redis."""
        if self.redis is None:
            return
        with contextlib.suppress(Exception):
            redis_sync.Redis(port=REDIS_PORT, socket_timeout=10).save()
        self.redis.stop()
        self.redis = None

    def close(self) -> None:
        for what, action in reversed(self._cleanups):
            try:
                action()
            except Exception as exc:
                log.warning("cleanup %s failed: %s", what, exc)
        self._cleanups.clear()


async def delete_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def _drop_database(admin_url: str) -> None:
    """Drops the bench database (the bench's own): every run starts from nothing."""
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
    finally:
        await conn.close()


def open_env() -> BenchEnv:
    """Starts (or reuses) the stack and prepares this run's database, Redis and topics."""
    paths = stack.StackPaths.default()
    var = paths.var / "bench"
    var.mkdir(parents=True, exist_ok=True)
    left = servers.stop_leftovers(var)
    if left:
        log.info("stopped processes left by an earlier run: %s", ", ".join(left))
    before = stack.status(paths)
    urls = stack.start(paths)
    env = BenchEnv(paths=paths, var=var, database_url="",
                   redis_url=f"redis://127.0.0.1:{REDIS_PORT}/0",
                   kafka_bootstrap=urls.kafka_bootstrap, stamp=time.strftime("%Y%m%d%H%M%S"))
    # Stop, at the end, only the stack components this run started.
    stops: dict[str, Callable[[stack.StackPaths], None]] = {
        "postgres": stack.stop_postgres, "redis": stack.stop_redis, "kafka": stack.stop_kafka}
    for name, stop in stops.items():
        if not before.get(name, False):
            env.on_close(f"stop {name}", functools.partial(stop, paths))
    try:
        asyncio.run(_drop_database(urls.database_url))
        env.database_url = stack.ensure_database(paths, BENCH_DATABASE)
        asyncio.run(migrate(env.database_url))
        (var / "redis" / "bench.rdb").unlink(missing_ok=True)
        # A spool left by an earlier run would be replayed into this run's topic.
        shutil.rmtree(var / "spool", ignore_errors=True)
        env.start_redis()
        env.on_close("stop bench Redis", env.stop_redis)

        def stop_processes() -> None:
            servers.stop_leftovers(var)

        env.on_close("stop bench processes", stop_processes)
    except BaseException:
        env.close()
        raise
    return env
