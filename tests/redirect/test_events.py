"""Click delivery when Kafka stops acknowledging (services/redirect/events.py): the
batch goes to the spool within ``kafka_ack_timeout`` (not the producer's send timeout),
new events go to the spool while Kafka counts as down, and a new producer replays them:
none lost, none doubled."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from services.redirect.events import ClickEmitter, fail_pending, pace_metadata_retries
from services.redirect.spool import Spool
from shared.kafka_admin import ensure_topics
from shared.tasks import cancel_and_wait
from tests.conftest import StackEnv, Tenant
from tests.faults.support import topic_event_ids
from tests.helpers import eventually
from tests.redirect.helpers import add_link, settings_for, start, visit


async def test_failed_metadata_updates_wait_the_retry_backoff() -> None:
    """The private aiokafka method pace_metadata_retries wraps is still there: a failed
    update (no broker reachable) now returns only after the producer's retry backoff,
    instead of letting the sender retry at once in a tight loop."""
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", retry_backoff_ms=200)
    try:
        pace_metadata_retries(producer)
        client = producer.client
        started = time.monotonic()
        assert await client._metadata_update(client.cluster, []) is False
        assert time.monotonic() - started >= 0.2
    finally:
        await producer.stop()


async def test_fail_pending_fails_the_batches_a_producer_holds() -> None:
    """The private aiokafka parts the emitter uses are still there and work: every batch
    fails at once (one waiting for a leader, one re-enqueued for a retry), and nothing
    is reported to the loop's exception handler (no callback error, no unretrieved
    exception)."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    try:
        accumulator = producer._message_accumulator
        futures = []
        for partition in (0, 1):
            builder = producer.create_batch()
            builder.append(timestamp=None, key=b"k", value=b"v")
            futures.append(await accumulator.add_batch(
                builder, TopicPartition("t", partition), 10))
        retried = accumulator._pop_batch(TopicPartition("t", 1))  # sent once, failed,
        accumulator.reenqueue(retried)  # and queued again for a retry
        fail_pending(producer)
        for future in futures:
            with pytest.raises(KafkaConnectionError):
                async with asyncio.timeout(1):  # at once, not after the request timeout
                    await future
        await producer.stop()
        del futures, retried, accumulator
        gc.collect()
        await asyncio.sleep(0)
        assert reported == []
    finally:
        loop.set_exception_handler(previous)


async def _counters(emitter: ClickEmitter) -> tuple[int, int, int]:
    return emitter.sent, emitter.spooled, emitter.replayed


@pytest.mark.stack
async def test_unacknowledged_batch_is_spooled_within_the_ack_bound(
    migrated: StackEnv, tmp_path: Path, topic: str, db: asyncpg.Pool,
    redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    await ensure_topics(migrated.kafka_bootstrap, [topic])
    link = await add_link(db, redis_client, tenant)
    client, edge = await start(settings_for(
        tmp_path, clicks_topic=topic, kafka_ack_timeout=0.2, kafka_retry_interval=3.0))
    emitter = edge.emitter
    try:
        silent = emitter._producer
        assert silent is not None

        async def never_acknowledged(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
            # A broker that takes the connection and the request, and never answers.
            return asyncio.get_running_loop().create_future()

        silent.send_batch = never_acknowledged
        started = time.monotonic()
        for _ in range(20):
            assert (await visit(client, tenant, link.path)).status == 302
        counters = await eventually(lambda: _counters(emitter), lambda c: c[1] >= 20,
                                    timeout=10, interval=0.01)
        took = time.monotonic() - started
        assert counters[:2] == (0, 20), counters
        # The ack bound (0.2 s) plus scheduling, far below the send timeout (10 s).
        assert took < 3.0, took
        assert emitter._producer is not silent and not emitter.kafka_up

        # Kafka counts as down: new events go to the spool at once, not to memory.
        for _ in range(10):
            assert (await visit(client, tenant, link.path)).status == 302
        counters = await eventually(lambda: _counters(emitter), lambda c: c[1] >= 30,
                                    timeout=2, interval=0.01)
        assert counters[:2] == (0, 30), counters

        # After the retry interval a new producer replays the spool.
        counters = await eventually(lambda: _counters(emitter), lambda c: c[2] >= 30,
                                    timeout=20)
        assert counters == (0, 30, 30), counters
        assert emitter.dropped == 0 and emitter.kafka_up
    finally:
        await client.close()
    on_topic, ids = await topic_event_ids(migrated.kafka_bootstrap, topic)
    assert (on_topic, len(ids)) == (30, 30)


async def test_a_draft_that_cannot_be_encoded_costs_only_itself(tmp_path: Path) -> None:
    class Picky:
        def encode(self, draft: Any) -> bytes:
            if draft[1] == 13:
                raise ValueError("a bug in the encoder")
            return b'{"link_id":%d}' % draft[1]

        def encode_many(self, drafts: list[Any]) -> list[tuple[int, bytes]]:
            return [(draft[1], self.encode(draft)) for draft in drafts]

    emitter = ClickEmitter(settings_for(tmp_path), cast(Any, Picky()))
    drafts: Any = [(0.0, link_id, "p", (), ()) for link_id in (1, 13, 2)]
    assert emitter._encode(drafts) == [(1, b'{"link_id":1}'), (2, b'{"link_id":2}')]
    assert emitter.dropped == 1


async def test_overflow_taken_from_memory_is_spooled_even_when_cancelled(
        tmp_path: Path) -> None:
    """The shutdown cancels the housekeeping task; if that lands while it writes the
    overflow it has already taken (here: waiting for the spool lock, which the sender
    holds while it spools the queue), the write still ends and is counted. A fresh-clone
    CI run once lost 50 such events."""

    class Plain:
        def encode_many(self, drafts: list[Any]) -> list[tuple[int, bytes]]:
            return [(draft[1], b'{"link_id":%d}' % draft[1]) for draft in drafts]

    emitter = ClickEmitter(settings_for(tmp_path, event_queue_size=0), cast(Any, Plain()))
    for link_id in range(50):
        emitter.emit(cast(Any, (0.0, link_id, "p", (), ())))
    assert emitter.queued == 50  # all in the overflow: the queue holds none

    async with emitter._spool_lock:  # the sender, spooling the queue
        housekeeping = asyncio.create_task(emitter.run_housekeeping())
        await eventually(lambda: _overflow(emitter), lambda n: n == 0, timeout=5)
        stopping = asyncio.create_task(cancel_and_wait(housekeeping))
        await asyncio.sleep(0.05)
        assert not stopping.done()  # it waits for the write it started
    await stopping
    assert housekeeping.cancelled()
    assert (emitter.spooled, emitter.dropped) == (50, 0)
    emitter.spool.seal()
    claimed = emitter.spool.claim()
    assert claimed is not None and sum(
        len(entries) for entries, _ in Spool.batches(*Spool.load(claimed), size=1000)) == 50


async def _overflow(emitter: ClickEmitter) -> int:
    return len(emitter._overflow)
