"""Kafka and the stats consumer failing under a steady load of redirects.

Guarantee checked each time: every visitor is redirected, and every click event the
redirect service accepted is counted by the stats service exactly once, compared by
event id (the topic's distinct event ids = the stats raw click table's event ids =
the number of redirects answered = the link's clicks in the rollups).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.conftest import Tenant
from tests.faults.conftest import create_link
from tests.faults.support import (
    CpuSnapshot,
    CpuSplit,
    FaultStack,
    LoadResult,
    Service,
    cpu_split,
    frozen_heap,
    kafka,
    metric,
    pin_servers,
    settle_accounting,
    steady_load,
    thread_pinned,
)

pytestmark = [pytest.mark.faults, pytest.mark.stack]

RATE = 80.0  # redirects per second: steady, small enough for 2 cores
P99_CEILING_S = 0.5  # no visitor waits on Kafka: far below any Kafka timeout
# The outage's load is five times as dense (400/s) and its normal p99 is measured over
# 2,000 requests (5 s): both 99th percentiles are then the 20th to 50th slowest request
# of their phase. The density matters most: the machine's own hiccups (a few ms of
# another process on the edge core, about once a second here) delay one or two requests
# each whatever the rate; at 160/s that was about 1 % of the requests, right at the p99
# (docs/reliability.md).
OUTAGE_RATE = 5 * RATE
BASELINE_REQUESTS = 2000


def _services(fault_stack: FaultStack, topic: str,
              split: CpuSplit | None = None) -> tuple[Service, Service]:
    """The redirect service and the stats consumer; with ``split``, the redirect service
    on the edge cores and the consumer on the backend ones."""
    spool = fault_stack.paths.var / "spool" / uuid.uuid4().hex[:8]
    # The default ack bound (250 ms) sends unacknowledged events to the spool, so the
    # short outages of these tests exercise the spool and its replay.
    redirect = Service(fault_stack, "redirect", {
        "LINKHOP_CLICKS_TOPIC": topic,
        "LINKHOP_REDIRECT_SPOOL_DIR": str(spool),
        "LINKHOP_REDIRECT_KAFKA_RETRY_INTERVAL": "PT1S",
    }, cpus=split.edge if split else None)
    stats = Service(fault_stack, "stats", {
        "LINKHOP_CLICKS_TOPIC": topic,
        "LINKHOP_STATS_CONSUMER_GROUP": f"faults-{uuid.uuid4().hex[:8]}",
    }, cpus=split.backend if split else None)
    return redirect, stats


def _assert_all_redirected(load: LoadResult) -> None:
    assert load.redirected == load.sent, load.summary()
    assert load.quantile(0.99) < P99_CEILING_S, load.summary()


@dataclass
class Outage:
    """One measured outage: the normal load before it, the load through it, and how
    much of the edge cores other processes took meanwhile."""

    baseline: LoadResult
    during: LoadResult
    marks: dict[str, float]
    foreign: tuple[float, float]  # share of the edge cores: baseline, during
    gc_pauses: list[float]  # the load generator's: a full collection before, then each

    @property
    def ratio(self) -> float:
        return self.during.quantile(0.99) / self.baseline.quantile(0.99)

    def report(self) -> str:
        stop = self.marks["stop"]
        normal, during = self.baseline.quantile(0.99), self.during.quantile(0.99)
        return (
            "outage timeline (s after the stop): "
            + ", ".join(f"{name} {at - stop:.1f}" for name, at in self.marks.items())
            + f"; slowest requests: {self.during.slowest(8, stop)}\n"
            f"p99 normal {normal * 1000:.1f}ms, during {during * 1000:.1f}ms "
            f"({self.ratio:.2f}x); requests over twice the normal p99: "
            f"{self.baseline.share_over(2 * normal):.2%} then "
            f"{self.during.share_over(2 * normal):.2%}; other processes on the edge cores: "
            f"{self.foreign[0]:.0%} then {self.foreign[1]:.0%}; "
            f"load generator's garbage collection: a full one {self.gc_pauses[0] * 1000:.0f}ms "
            f"(before the baseline), then {len(self.gc_pauses) - 1} of at most "
            f"{max(self.gc_pauses[1:], default=0) * 1000:.1f}ms; "
            f"baseline {self.baseline.summary()}; during {self.during.summary()}")


async def _outage(fault_stack: FaultStack, redirect: Service, link_path: str, host: str,
                  split: CpuSplit | None, gc_pauses: list[float]) -> Outage:
    """The normal p99, then the broker stopped (SIGTERM), absent for 2 s and started,
    under load until 1 s after the redirect service has reconnected and replayed."""
    args = (redirect.url, host, link_path)
    backend = split.backend if split else None
    edge = split.edge if split else frozenset(os.sched_getaffinity(0))
    assert redirect.process is not None
    # The edge itself: the redirect process and the load generator (this thread).
    own = (Path(f"/proc/{redirect.process.pid}/stat"),
           Path(f"/proc/self/task/{threading.get_native_id()}/stat"))
    before = CpuSnapshot.take(edge, own)
    baseline = await steady_load(*args, requests=BASELINE_REQUESTS, rate=OUTAGE_RATE)
    after_baseline = CpuSnapshot.take(edge, own)
    recovered = asyncio.Event()
    marks: dict[str, float] = {}

    async def outage() -> None:
        await asyncio.sleep(0.5)
        marks["stop"] = time.monotonic()
        await kafka(fault_stack, "stop", backend)
        marks["stopped"] = time.monotonic()
        await asyncio.sleep(2.0)
        marks["start"] = time.monotonic()
        await kafka(fault_stack, "start", backend)
        marks["ready"] = time.monotonic()
        # Then the reconnect (retry interval 1 s) and the replay of the spool.
        async with asyncio.timeout(30), aiohttp.ClientSession() as polls:
            while (await metric(redirect.url, "linkhop_kafka_up", polls) != 1
                   or await metric(redirect.url, "linkhop_click_events_replayed_total",
                                   polls) < 1):
                await asyncio.sleep(0.1)
        marks["replayed"] = time.monotonic()
        await asyncio.sleep(1.0)
        recovered.set()

    during, _ = await asyncio.gather(
        steady_load(*args, requests=20_000, rate=OUTAGE_RATE, until=recovered), outage())
    end = CpuSnapshot.take(edge, own)
    return Outage(baseline, during, marks, (before.foreign_share(after_baseline, edge),
                                           after_baseline.foreign_share(end, edge)), gc_pauses)


async def test_kafka_stopped_then_started(
    restore_servers: FaultStack, fault_db: asyncpg.Pool, fault_tenant: Tenant, fault_topic: str
) -> None:
    """Every visitor redirected (p99 under the ceiling), every event counted exactly
    once. The load runs through the whole outage: the broker's stop, its absence, its
    start (a JVM starting) and the replay after it.

    The broker, the processes that stop and start it, the stats consumer, PostgreSQL and
    Redis (the faults instance's, and the shared instance's when it runs) are on other
    cores than the redirect service and the load generator (in production they run on
    other machines), and the load generator's heap is frozen (``frozen_heap``). The p99's
    ratio to its normal figure is reported, not asserted (a speed target: ``make bench``
    measures it, ``bench/kafka_outage.py``): docs/reliability.md has the measurements
    and why."""
    fault_stack = restore_servers
    link = await create_link(fault_stack, fault_db, fault_tenant)
    split = cpu_split()
    everywhere = frozenset(os.sched_getaffinity(0))
    if split is not None:
        pin_servers(fault_stack, split.backend)
    redirect, stats = _services(fault_stack, fault_topic, split)
    redirect.start()
    stats.start()
    try:
        with thread_pinned(split.edge if split else None), frozen_heap() as gc_pauses:
            args = (redirect.url, fault_tenant.hostname, link.path)
            warmup = await steady_load(*args, requests=40, rate=RATE)  # connections, caches
            outage = await _outage(fault_stack, redirect, link.path, fault_tenant.hostname,
                                   split, gc_pauses)
            after = await steady_load(*args, requests=40, rate=RATE)
        print(outage.report())
        phases = (warmup, outage.baseline, outage.during, after)
        for phase in phases:
            _assert_all_redirected(phase)
        accepted = sum(phase.redirected for phase in phases)
        accounting = await settle_accounting(fault_stack, fault_topic, link.link_id, accepted)
        spooled = await metric(redirect.url, "linkhop_click_events_spooled_total")
        dropped = await metric(redirect.url, "linkhop_click_events_dropped_total")
        print(f"{accounting.summary()} spooled={spooled:g}")
        assert accounting.exact(), accounting.summary()
        assert spooled > 0  # the outage used the spool
        assert dropped == 0
        assert redirect.loop_errors() == []
        # p99 within twice its normal figure: reported, not asserted (the benchmark
        # measures it under its own load: bench/kafka_outage.py). The normal p99 of
        # a quiet edge core is about 1 ms, so a few dozen requests of 2 to 6 ms decide
        # it: 0.57x to 1.85x in the last 12 runs, but 1.96x and 2.30x in two runs of the
        # whole fault suite before the heap freeze and the shared stack's pinning, and
        # 2.25x in one earlier CI run (docs/reliability.md).
    finally:
        redirect.stop()
        stats.stop()
        if split is not None:
            pin_servers(fault_stack, everywhere)


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
            await kafka(fault_stack, "kill")  # kill -9
            await asyncio.sleep(1.0)
            await kafka(fault_stack, "start")

        load, _ = await asyncio.gather(steady_load(*args, requests=400, rate=RATE), crash())
        _assert_all_redirected(load)
        accounting = await settle_accounting(fault_stack, fault_topic, link.link_id,
                                             load.redirected)
        print(f"kafka kill -9: {load.summary()}; {accounting.summary()}")
        assert accounting.exact(), accounting.summary()
        assert await metric(redirect.url, "linkhop_click_events_dropped_total") == 0
        assert redirect.loop_errors() == []
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
