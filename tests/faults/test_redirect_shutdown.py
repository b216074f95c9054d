"""The redirect service stopped with click events in flight.

SIGTERM: the clean shutdown sends what is queued to Kafka or spools it, so nothing the
service accepted is lost. SIGKILL: what reached the disk spool is replayed by the next
process on the same spool; only events still in memory can be lost, at most those of
the window stated in docs/reliability.md (the last ``kafka_ack_timeout`` plus one spool
write), and none is counted twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Tenant
from tests.faults.conftest import create_link
from tests.faults.support import (
    Accounting,
    FaultStack,
    LoadResult,
    Service,
    kafka,
    metric,
    settle_accounting,
    steady_load,
    topic_event_ids,
)
from tests.helpers import spawned_workers

pytestmark = [pytest.mark.faults, pytest.mark.stack]

RATE = 100.0
# The stated window (docs/reliability.md): a SIGKILL loses at most the events accepted
# in the last kafka_ack_timeout (250 ms, the default these tests run with) plus one
# spool write (50 ms allowed): 30 at 100 requests/s.
ACK_TIMEOUT_S = 0.25
SIGKILL_LOSS_BOUND = round(RATE * (ACK_TIMEOUT_S + 0.05))
# Spool files still holding events (services/redirect/spool.py); .offset files are not.
SPOOL_SUFFIXES = {".spool", ".ready", ".replaying"}


def _assert_lost_within_the_window(what: str, load: LoadResult, accounting: Accounting
                                   ) -> None:
    """Nothing counted twice, nothing counted that was not on the topic, and at most
    the stated window's events lost."""
    lost = load.redirected - len(accounting.counted_ids)
    print(f"{what}: {load.summary()}; {accounting.summary()}; lost={lost} "
          f"(bound {SIGKILL_LOSS_BOUND})")
    assert accounting.topic_ids == accounting.counted_ids, accounting.summary()
    assert accounting.rollup_clicks == len(accounting.counted_ids), accounting.summary()
    assert lost <= SIGKILL_LOSS_BOUND, accounting.summary()


def _pipeline(fault_stack: FaultStack, topic: str) -> tuple[Service, Service, dict[str, str]]:
    redirect_env = {
        "LINKHOP_CLICKS_TOPIC": topic,
        "LINKHOP_REDIRECT_SPOOL_DIR": str(fault_stack.paths.var / "spool" / uuid.uuid4().hex),
        "LINKHOP_REDIRECT_KAFKA_RETRY_INTERVAL": "PT1S",
    }
    stats = Service(fault_stack, "stats", {
        "LINKHOP_CLICKS_TOPIC": topic,
        "LINKHOP_STATS_CONSUMER_GROUP": f"faults-{uuid.uuid4().hex[:8]}",
    })
    return Service(fault_stack, "redirect", redirect_env), stats, redirect_env


async def test_sigterm_under_load_loses_nothing(
    fault_stack: FaultStack, fault_db: asyncpg.Pool, fault_tenant: Tenant, fault_topic: str
) -> None:
    link = await create_link(fault_stack, fault_db, fault_tenant)
    redirect, stats, env = _pipeline(fault_stack, fault_topic)
    redirect.start()
    stats.start()
    second = Service(fault_stack, "redirect", env)
    try:
        async def stop_mid_load() -> None:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(redirect.stop)  # SIGTERM, clean shutdown

        load, _ = await asyncio.gather(
            steady_load(redirect.url, fault_tenant.hostname, link.path, requests=300,
                        rate=RATE, timeout=2.0),
            stop_mid_load(),
        )
        assert redirect.exit_code == 0, redirect.log_tail()
        # Requests after the stop were refused (connection errors): never accepted.
        assert 0 < load.redirected < load.sent, load.summary()
        second.start()  # same spool: replays whatever the shutdown spooled
        accounting = await settle_accounting(fault_stack, fault_topic, link.link_id,
                                             load.redirected)
        print(f"redirect SIGTERM: {load.summary()}; {accounting.summary()}")
        assert accounting.exact(), accounting.summary()
    finally:
        second.stop()
        redirect.stop()
        stats.stop()


async def test_sigkill_with_kafka_down_replays_the_spool(
    restore_servers: FaultStack, fault_db: asyncpg.Pool, fault_tenant: Tenant, fault_topic: str
) -> None:
    fault_stack = restore_servers
    link = await create_link(fault_stack, fault_db, fault_tenant)
    redirect, stats, env = _pipeline(fault_stack, fault_topic)
    stats.start()
    second = Service(fault_stack, "redirect", env)
    try:
        # Kafka away before the service starts: every event goes through the spool (how
        # long a service that was connected keeps events in memory first is measured in
        # test_kafka_faults and stated in docs/reliability.md).
        await kafka(fault_stack, "stop")
        redirect.start()

        async def kill_mid_load() -> float:
            # Once the service has noticed (it spools), kill it while it keeps spooling.
            spooled = 0.0
            for _ in range(100):
                await asyncio.sleep(0.1)
                spooled = await metric(redirect.url, "linkhop_click_events_spooled_total")
                if spooled:
                    break
            await asyncio.sleep(0.5)
            await asyncio.to_thread(redirect.kill)  # SIGKILL: no shutdown at all
            return spooled

        load, first_spooled = await asyncio.gather(
            steady_load(redirect.url, fault_tenant.hostname, link.path, requests=500,
                        rate=RATE, timeout=2.0),
            kill_mid_load(),
        )
        assert first_spooled > 0, redirect.log_tail()
        assert 0 < load.redirected < load.sent, load.summary()
        await kafka(fault_stack, "start")
        second.start()
        accounting = await settle_accounting(fault_stack, fault_topic, link.link_id,
                                             load.redirected, timeout=30)
        replayed = await metric(second.url, "linkhop_click_events_replayed_total")
        print(f"redirect SIGKILL (Kafka down): {load.summary()}; {accounting.summary()} "
              f"replayed_by_next_process={replayed:g}")
        # Nothing counted twice, nothing counted that was not on the topic.
        assert accounting.topic_ids == accounting.counted_ids, accounting.summary()
        assert accounting.rollup_clicks == len(accounting.counted_ids), accounting.summary()
        assert len(accounting.counted_ids) <= load.redirected
        assert replayed > 0  # the spool of the killed process was replayed
        assert load.redirected - len(accounting.counted_ids) <= SIGKILL_LOSS_BOUND, (
            accounting.summary())
    finally:
        second.stop()
        redirect.stop()
        stats.stop()


@pytest.mark.parametrize("kill_after", [0.1, 1.0], ids=["inside-the-window", "after-it"])
async def test_sigkill_just_after_kafka_fails_loses_at_most_the_ack_window(
    restore_servers: FaultStack, fault_db: asyncpg.Pool, fault_tenant: Tenant, fault_topic: str,
    kill_after: float,
) -> None:
    """The stated window: after Kafka fails, the batch being sent waits at most
    kafka_ack_timeout (250 ms) for its acknowledgement before it is spooled, and from
    then on events are spooled as they come. A SIGKILL 0.1 s after the broker's death
    (while that batch is still waiting) loses at most the events accepted since; one
    1 s after it loses at most the last spool write's."""
    fault_stack = restore_servers
    link = await create_link(fault_stack, fault_db, fault_tenant)
    redirect, stats, env = _pipeline(fault_stack, fault_topic)
    redirect.start()
    stats.start()
    second = Service(fault_stack, "redirect", env)
    try:
        async def fail_then_kill() -> None:
            await asyncio.sleep(0.5)
            # kill -9 of the broker, at a known instant (no helper process in between).
            os.kill(int(fault_stack.paths.kafka_pid.read_text()), signal.SIGKILL)
            await asyncio.sleep(kill_after)
            await asyncio.to_thread(redirect.kill)

        load, _ = await asyncio.gather(
            steady_load(redirect.url, fault_tenant.hostname, link.path, requests=300,
                        rate=RATE, timeout=2.0),
            fail_then_kill(),
        )
        await kafka(fault_stack, "start")
        second.start()
        accounting = await settle_accounting(fault_stack, fault_topic, link.link_id,
                                             load.redirected, timeout=20)
        _assert_lost_within_the_window(
            f"redirect SIGKILL {kill_after} s after Kafka kill -9", load, accounting)
        assert redirect.loop_errors() == [] and second.loop_errors() == []
    finally:
        second.stop()
        redirect.stop()
        stats.stop()


async def test_a_worker_killed_among_several_has_its_spool_replayed_by_the_others(
    restore_servers: FaultStack, fault_db: asyncpg.Pool, fault_tenant: Tenant, fault_topic: str
) -> None:
    """Two workers (LINKHOP_REDIRECT_WORKERS=2) spool to one directory while Kafka is
    away; one of them is killed (SIGKILL) under load. The launcher replaces it, and once
    Kafka is back the live workers send every spool file, the dead worker's included:
    nothing is counted twice, and only what the dead worker held in memory can be lost
    (the same bound as one worker's)."""
    fault_stack = restore_servers
    link = await create_link(fault_stack, fault_db, fault_tenant)
    _, stats, env = _pipeline(fault_stack, fault_topic)
    redirect = Service(fault_stack, "redirect", {**env, "LINKHOP_REDIRECT_WORKERS": "2"})
    spool = Path(env["LINKHOP_REDIRECT_SPOOL_DIR"])
    stats.start()
    try:
        await kafka(fault_stack, "stop")
        redirect.start()
        assert redirect.process is not None
        launcher = redirect.process.pid

        def spooling() -> list[int]:
            """The workers with a spool file. Not always both: the load's keep-alive
            connections may all have been given to one worker (SO_REUSEPORT)."""
            names = [path.name for path in spool.iterdir()] if spool.is_dir() else []
            return [pid for pid in sorted(spawned_workers(launcher))
                    if any(f"-{pid}." in name for name in names)]

        async def kill_a_spooling_worker() -> int:
            for _ in range(100):
                await asyncio.sleep(0.1)
                if spooling():
                    break
            await asyncio.sleep(0.5)  # while it goes on spooling
            victims = spooling()
            assert victims, redirect.log_tail()
            os.kill(victims[0], signal.SIGKILL)
            return victims[0]

        load, victim = await asyncio.gather(
            steady_load(redirect.url, fault_tenant.hostname, link.path, requests=500,
                        rate=RATE, timeout=2.0),
            kill_a_spooling_worker(),
        )
        assert victim not in spawned_workers(launcher)
        assert len(spawned_workers(launcher)) == 2, redirect.log_tail()  # replaced
        await kafka(fault_stack, "start")
        # Every spool file sent (the workers retry Kafka every second), then counted.
        for _ in range(300):
            if not any(path.suffix in SPOOL_SUFFIXES for path in spool.iterdir()):
                break
            await asyncio.sleep(0.1)
        left = [path.name for path in spool.iterdir() if path.suffix in SPOOL_SUFFIXES]
        assert not left, redirect.log_tail()
        _, on_topic = await topic_event_ids(fault_stack.kafka_bootstrap, fault_topic)
        accounting = await settle_accounting(fault_stack, fault_topic, link.link_id,
                                             len(on_topic), timeout=20)
        _assert_lost_within_the_window("redirect worker SIGKILL among 2 (Kafka down)", load,
                                       accounting)
        assert redirect.loop_errors() == []
    finally:
        redirect.stop()
        stats.stop()
