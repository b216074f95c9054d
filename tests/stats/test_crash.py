"""kill -9 of the stats consumer process at random points while clicks flow: after a
restart every click is counted exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys

import asyncpg
import pytest

from shared.kafka_admin import ensure_topics
from tests.conftest import StackEnv, Tenant, unique
from tests.helpers import eventually
from tests.stats.support import click, domain_total, link_totals, make_link, produce_events

pytestmark = [pytest.mark.stack, pytest.mark.slow]

WAVES = 8
PER_WAVE = 1500
KILLS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_consumer(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "services.stats"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_exact_counts_after_kill_9(migrated: StackEnv, db: asyncpg.Pool, tenant: Tenant,
                                         topic: str) -> None:
    await ensure_topics(migrated.kafka_bootstrap, [topic], partitions=4)
    links = [(await make_link(db, tenant))[0] for _ in range(10)]
    env = os.environ | migrated.env() | {
        "LINKHOP_STATS_PORT": str(free_port()),
        "LINKHOP_CLICKS_TOPIC": topic,
        "LINKHOP_STATS_CONSUMER_GROUP": unique("group-"),
        "LINKHOP_STATS_BATCH_MAX_RECORDS": "300",  # many transactions to die in
        "LINKHOP_STATS_KAFKA_SESSION_TIMEOUT": "PT6S",  # a killed member is noticed sooner
        "LINKHOP_LOG_LEVEL": "WARNING",
    }
    rng = random.Random()

    async def flow() -> None:
        for wave in range(WAVES):
            await produce_events(migrated.kafka_bootstrap, topic, [
                click(links[(wave + i) % len(links)], tenant.domain_id)
                for i in range(PER_WAVE)])
            await asyncio.sleep(0.4)

    producing = asyncio.create_task(flow())
    process = start_consumer(env)

    async def counted() -> int:
        assert process.poll() is None, "the stats process exited on its own"
        return await domain_total(db, tenant.domain_id)

    try:
        for _ in range(KILLS):
            # Kill while it is counting: after it has made progress, at a random moment.
            seen = await counted()
            await eventually(counted, seen.__lt__, timeout=30, interval=0.02)
            await asyncio.sleep(rng.uniform(0, 0.3))
            process.send_signal(signal.SIGKILL)
            process.wait()
            process = start_consumer(env)
        await producing
        produced = WAVES * PER_WAVE
        total = await eventually(counted, lambda n: n >= produced, timeout=60)
        assert total == produced
        await asyncio.sleep(0.5)
        assert await domain_total(db, tenant.domain_id) == produced
        assert sum((await link_totals(db, tenant.domain_id)).values()) == produced
        raw = await db.fetchval("SELECT count(*) FROM stats_clicks WHERE domain_id = $1",
                                tenant.domain_id)
        assert raw == produced
    finally:
        producing.cancel()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
