"""Kafka and the stats consumer failing under a steady load of redirects.

Guarantee checked each time: every visitor is redirected, and every click event the
redirect service accepted is counted by the stats service exactly once, compared by
event id (the topic's distinct event ids = the stats raw click table's event ids =
the number of redirects answered = the link's clicks in the rollups).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import asyncpg
import pytest

from deploy.local import stack
from tests.conftest import Tenant
from tests.faults.conftest import create_link
from tests.faults.support import (
    FaultStack,
    LoadResult,
    Service,
    metric,
    settle_accounting,
    steady_load,
)

pytestmark = [pytest.mark.faults, pytest.mark.stack]

RATE = 80.0  # redirects per second: steady, small enough for 2 cores
P99_CEILING_S = 0.5  # no visitor waits on Kafka: far below any Kafka timeout


def _services(fault_stack: FaultStack, topic: str) -> tuple[Service, Service]:
    spool = fault_stack.paths.var / "spool" / uuid.uuid4().hex[:8]
    redirect = Service(fault_stack, "redirect", {
        "LINKHOP_CLICKS_TOPIC": topic,
        "LINKHOP_REDIRECT_SPOOL_DIR": str(spool),
        # Unacknowledged events go to the spool after 2 s (default 10 s), so the short
        # outages of these tests exercise the spool and its replay, not only retries.
        "LINKHOP_REDIRECT_KAFKA_SEND_TIMEOUT": "PT2S",
        "LINKHOP_REDIRECT_KAFKA_RETRY_INTERVAL": "PT1S",
    })
    stats = Service(fault_stack, "stats", {
        "LINKHOP_CLICKS_TOPIC": topic,
        "LINKHOP_STATS_CONSUMER_GROUP": f"faults-{uuid.uuid4().hex[:8]}",
    })
    return redirect, stats


def _assert_all_redirected(load: LoadResult) -> None:
    assert load.redirected == load.sent, load.summary()
    assert load.quantile(0.99) < P99_CEILING_S, load.summary()


async def test_kafka_stopped_then_started(
    restore_servers: FaultStack, fault_db: asyncpg.Pool, fault_tenant: Tenant, fault_topic: str
) -> None:
    fault_stack = restore_servers
    link = await create_link(fault_stack, fault_db, fault_tenant)
    redirect, stats = _services(fault_stack, fault_topic)
    redirect.start()
    stats.start()
    try:
        args = (redirect.url, fault_tenant.hostname, link.path)
        baseline = await steady_load(*args, requests=80, rate=RATE)

        async def outage() -> float:
            await asyncio.sleep(0.5)
            started = time.monotonic()
            await asyncio.to_thread(stack.stop_kafka, fault_stack.paths)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(stack.start_kafka, fault_stack.paths)
            return time.monotonic() - started

        load, down_for = await asyncio.gather(
            steady_load(*args, requests=480, rate=RATE), outage()
        )
        after = await steady_load(*args, requests=40, rate=RATE)
        for phase in (baseline, load, after):
            _assert_all_redirected(phase)
        accepted = baseline.redirected + load.redirected + after.redirected
        accounting = await settle_accounting(fault_stack, fault_topic, link.link_id, accepted)
        spooled = await metric(redirect.url, "linkhop_click_events_spooled_total")
        dropped = await metric(redirect.url, "linkhop_click_events_dropped_total")
        print(f"kafka stopped {down_for:.1f}s: baseline {baseline.summary()}; "
              f"during {load.summary()}; {accounting.summary()} spooled={spooled:g}")
        assert accounting.exact(), accounting.summary()
        assert spooled > 0  # the outage (longer than the send timeout) used the spool
        assert dropped == 0
    finally:
        redirect.stop()
        stats.stop()


async def test_kafka_killed_hard_mid_load(
    restore_servers: FaultStack, fault_db: asyncpg.Pool, fault_tenant: Tenant, fault_topic: str
) -> None:
    fault_stack = restore_servers
    link = await create_link(fault_stack, fault_db, fault_tenant)
    redirect, stats = _services(fault_stack, fault_topic)
    redirect.start()
    stats.start()
    try:
        args = (redirect.url, fault_tenant.hostname, link.path)

        async def crash() -> None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(stack.stop_kafka, fault_stack.paths, True)  # kill -9
            await asyncio.sleep(1.0)
            await asyncio.to_thread(stack.start_kafka, fault_stack.paths)

        load, _ = await asyncio.gather(steady_load(*args, requests=400, rate=RATE), crash())
        _assert_all_redirected(load)
        accounting = await settle_accounting(fault_stack, fault_topic, link.link_id,
                                             load.redirected)
        print(f"kafka kill -9: {load.summary()}; {accounting.summary()}")
        assert accounting.exact(), accounting.summary()
        assert await metric(redirect.url, "linkhop_click_events_dropped_total") == 0
    finally:
        redirect.stop()
        stats.stop()


async def test_stats_consumer_killed_at_random_points(
    fault_stack: FaultStack, fault_db: asyncpg.Pool, fault_tenant: Tenant, fault_topic: str
) -> None:
    link = await create_link(fault_stack, fault_db, fault_tenant)
    redirect, stats = _services(fault_stack, fault_topic)
    redirect.start()
    stats.start()
    kills = 3
    try:
        args = (redirect.url, fault_tenant.hostname, link.path)

        async def killer() -> None:
            rng = random.Random()  # random points: a different run, different points
            for _ in range(kills):
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                await asyncio.to_thread(stats.kill)
                await asyncio.to_thread(stats.start, wait=False)
                await asyncio.to_thread(stats.wait_healthy)

        load, _ = await asyncio.gather(steady_load(*args, requests=500, rate=RATE), killer())
        _assert_all_redirected(load)
        accounting = await settle_accounting(fault_stack, fault_topic, link.link_id,
                                             load.redirected)
        print(f"stats consumer kill -9 x{kills}: {load.summary()}; {accounting.summary()}")
        assert accounting.exact(), accounting.summary()
    finally:
        redirect.stop()
        stats.stop()
