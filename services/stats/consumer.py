"""The click consumer loop: poll, write each batch with its offsets in one transaction,
then commit to Kafka (only after the data is durable)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from services.stats import repository
from services.stats.batch import PartitionBatch, RawRecord, clicks_per_link, partition_batch
from services.stats.settings import Settings
from shared.resources import DB_POOL

log = logging.getLogger(__name__)


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume each partition where Postgres says we stopped."""

    def __init__(self, consumer: AIOKafkaConsumer, pool: asyncpg.Pool, settings: Settings):
        self._consumer = consumer
        self._pool = pool
        self._settings = settings

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned:
            return
        async with self._pool.acquire() as conn:
            stored = await repository.load_offsets(
                conn, self._settings.consumer_group, self._settings.clicks_topic,
                [tp.partition for tp in assigned],
            )
        for tp in assigned:
            if tp.partition in stored:
                self._consumer.seek(tp, stored[tp.partition])


async def apply_batches(
    pool: asyncpg.Pool, settings: Settings, batches: list[PartitionBatch]
) -> None:
    """One transaction: every partition's new clicks and its next offset."""
    group, topic = settings.consumer_group, settings.clicks_topic
    async with pool.acquire() as conn, conn.transaction():
        for batch in sorted(batches, key=lambda b: b.partition):  # fixed lock order
            stored = await repository.lock_offset(conn, group, topic, batch.partition)
            if stored >= batch.next_offset:
                continue  # already counted (a replay after a crash or a rebalance)
            skip = max(0, stored - batch.first_offset)
            fresh = [e for i, e in enumerate(batch.events) if i >= skip] if skip else batch.events
            await repository.add_link_clicks(conn, clicks_per_link(fresh))
            await repository.store_offset(conn, group, topic, batch.partition, batch.next_offset)


async def consume(consumer: AIOKafkaConsumer, pool: asyncpg.Pool, settings: Settings) -> None:
    while True:
        polled = await consumer.getmany(
            timeout_ms=int(settings.poll_timeout.total_seconds() * 1000),
            max_records=settings.batch_max_records,
        )
        if not polled:
            continue
        batches = [
            partition_batch(
                tp.partition, [RawRecord(tp.partition, m.offset, m.value) for m in messages]
            )
            for tp, messages in polled.items()
            if messages
        ]
        await apply_batches(pool, settings, batches)
        await consumer.commit(
            {TopicPartition(settings.clicks_topic, b.partition): b.next_offset for b in batches}
        )


def consumer_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        pool = app[DB_POOL]
        consumer.subscribe(
            [settings.clicks_topic], listener=_SeekToStoredOffsets(consumer, pool, settings)
        )
        await consumer.start()
        task = asyncio.create_task(consume(consumer, pool, settings))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await consumer.stop()

    return ctx
