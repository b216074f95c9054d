"""The click consumer loop: poll, dead-letter what cannot be read, write each batch with
its offsets in one transaction, then commit to Kafka (only after the data is durable).

Postgres is the source of truth for positions: on assignment, and after any failed
batch, each partition resumes at the offset stored with the data. Kafka's committed
offsets only serve monitoring (consumer lag) and are never ahead of Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable

import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from services.stats import repository
from services.stats.batch import (
    PreparedBatch,
    Record,
    partition_batch,
    prepare,
)
from services.stats.settings import Settings
from shared.resources import DB_POOL
from shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# How long a poll waits for new records while writes are in flight (a finished write
# is noticed after at most this long).
_BUSY_POLL_MS = 10
# Writes in flight before the loop waits for one to finish (each on its own connection,
# at most one per partition). Two keep Postgres busy on both cores of a 2-core machine;
# four measured no faster there.
_MAX_WRITES = 2
_GC_THRESHOLD = 50_000


async def seek_to_stored(
    consumer: AIOKafkaConsumer, pool: asyncpg.Pool, settings: Settings,
    partitions: list[TopicPartition], *, unknown_to_beginning: bool,
) -> None:
    """Positions ``partitions`` where Postgres says this group stopped."""
    if not partitions:
        return
    async with pool.acquire() as conn:
        stored = await repository.load_offsets(
            conn, settings.consumer_group, settings.clicks_topic,
            [tp.partition for tp in partitions],
        )
    unknown = []
    for tp in partitions:
        if tp.partition in stored:
            consumer.seek(tp, stored[tp.partition])
        else:
            unknown.append(tp)
    if unknown and unknown_to_beginning:
        # Nothing of these partitions was ever stored, so nothing was counted either.
        await consumer.seek_to_beginning(*unknown)


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume each partition where Postgres says we stopped."""

    def __init__(self, consumer: AIOKafkaConsumer, pool: asyncpg.Pool, settings: Settings):
        self._consumer = consumer
        self._pool = pool
        self._settings = settings

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await seek_to_stored(self._consumer, self._pool, self._settings, list(assigned),
                             unknown_to_beginning=False)


# A deadlock or serialization failure rolls the whole transaction back, so trying it
# again is as exactly-once as the first attempt. Concurrent partitions' transactions
# take shared rows (a domain's rollups) in one key order, which should make these rare.
_RETRIED = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
_ATTEMPTS = 5


async def apply_batch(pool: asyncpg.Pool, settings: Settings, batch: PreparedBatch) -> int:
    """One transaction: the partition's not-yet-counted clicks and its next offset.
    Returns the number of clicks newly counted."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return await _apply_once(pool, settings, batch)
        except _RETRIED as exc:
            if attempt == _ATTEMPTS:
                raise
            log.info("partition %d: %s; retrying the batch", batch.partition,
                     type(exc).__name__)
    raise AssertionError("unreachable")


async def _apply_once(pool: asyncpg.Pool, settings: Settings, batch: PreparedBatch) -> int:
    group, topic = settings.consumer_group, settings.clicks_topic
    async with pool.acquire() as conn, conn.transaction():
        position = await repository.lock_offset(conn, group, topic, batch.partition)
        if position >= batch.next_offset:
            return 0  # already counted (a replay after a crash or a rebalance)
        if position > batch.first_offset:
            columns = batch.columns_from(position)
        else:
            if 0 < position < batch.first_offset:
                log.warning("partition %d: offsets %d..%d were never stored (gap)",
                            batch.partition, position, batch.first_offset)
            columns = batch.columns
        counted = await repository.write_clicks(conn, columns)
        await repository.store_offset(conn, group, topic, batch.partition, batch.next_offset)
    return counted


class ClickConsumer:
    def __init__(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer,
                 pool: asyncpg.Pool, settings: Settings) -> None:
        self._consumer = consumer
        self._producer = producer
        self._pool = pool
        self._settings = settings

    async def run(self) -> None:
        """Consumes forever; a failed batch is retried (with backoff) from the stored
        positions, so an outage of Postgres or Kafka delays counting but never ends it."""
        initial = self._settings.retry_initial.total_seconds()
        delay = initial
        resume = False
        while True:
            try:
                if resume:
                    # The failed batch was polled, so the fetch positions are past it:
                    # rewind to what Postgres holds before polling anything else.
                    await seek_to_stored(
                        self._consumer, self._pool, self._settings,
                        list(self._consumer.assignment()), unknown_to_beginning=True,
                    )
                    resume = False
                async for _ in self._batches():
                    delay = initial
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("click batch failed; retrying in %.1f s from stored offsets",
                              delay)
                resume = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.retry_max.total_seconds())

    async def _batches(self) -> AsyncIterator[int]:
        """Yields each written batch's count. Every partition's batches are written in
        transactions of their own, one at a time per partition (its offset advances in
        order) but concurrently across partitions on separate pool connections, so
        Postgres works on several cores; polling, decoding and enriching overlap them.
        Only partitions with no write in flight are polled: a partition waiting for its
        write holds up neither the others nor the poll."""
        settings = self._settings
        idle_ms = int(settings.poll_timeout.total_seconds() * 1000)
        writing: dict[int, tuple[asyncio.Task[int], int]] = {}  # partition: (write, next)
        try:
            while True:
                if len(writing) >= _MAX_WRITES:
                    await asyncio.wait([w for w, _ in writing.values()],
                                       return_when=asyncio.FIRST_COMPLETED)
                done = {p: (w, o) for p, (w, o) in writing.items() if w.done()}
                if done:
                    for partition in done:
                        del writing[partition]
                    counts = [w.result() for w, _ in done.values()]  # a failure propagates
                    await self._commit({p: o for p, (_, o) in done.items()})
                    for counted in counts:
                        yield counted
                free = [tp for tp in self._consumer.assignment() if tp.partition not in writing]
                if writing and not free:
                    await asyncio.wait([w for w, _ in writing.values()],
                                       return_when=asyncio.FIRST_COMPLETED)
                    continue
                # While writes are in flight, poll briefly so a finished one is noticed soon.
                polled = await self._consumer.getmany(
                    *free, timeout_ms=_BUSY_POLL_MS if writing else idle_ms,
                    max_records=settings.batch_max_records,
                )
                batches = [partition_batch(tp.partition, messages)
                           for tp, messages in polled.items() if messages]
                prepared = [prepare(b) for b in batches]
                invalid = [item for b in batches for item in b.invalid]
                if invalid:
                    await self._dead_letter(invalid)
                for batch in prepared:
                    task = asyncio.create_task(apply_batch(self._pool, settings, batch))
                    writing[batch.partition] = (task, batch.next_offset)
        finally:
            # No effect on finished writes; an unfinished one rolls back (it is redone
            # from the stored offsets). Their results are dropped either way.
            for task, _ in writing.values():
                task.cancel()
            for task, _ in writing.values():
                with contextlib.suppress(BaseException):
                    await task

    async def _dead_letter(self, invalid: list[tuple[Record, str]]) -> None:
        """Sends the original bytes with the reason, and waits until Kafka has them:
        their offsets are stored (skipped) only after that."""
        topic = self._settings.dead_letter_topic
        sends = []
        for record, reason in invalid:
            log.warning("dead-lettering %s[%d]@%d: %s", self._settings.clicks_topic,
                        record.partition, record.offset, reason)
            headers = [
                ("reason", reason.encode()),
                ("source-topic", self._settings.clicks_topic.encode()),
                ("source-partition", str(record.partition).encode()),
                ("source-offset", str(record.offset).encode()),
            ]
            # Kafka refuses a message with neither key nor value: an empty key stands in.
            key = record.key if record.key is not None or record.value is not None else b""
            sends.append(await self._producer.send(topic, key=key, value=record.value,
                                                   headers=headers))
        await asyncio.gather(*sends)

    async def _commit(self, offsets: dict[int, int]) -> None:
        topic = self._settings.clicks_topic
        try:
            await self._consumer.commit(
                {TopicPartition(topic, p): o for p, o in offsets.items()}
            )
        except KafkaError as exc:
            # Harmless: Postgres holds the positions; Kafka's copy is for lag monitoring.
            log.info("Kafka offset commit skipped: %r", exc)


def _report_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("click consumer stopped", exc_info=task.exception())


def consumer_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = app[DB_POOL]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=int(settings.kafka_session_timeout.total_seconds() * 1000),
            heartbeat_interval_ms=max(
                100, int(settings.kafka_session_timeout.total_seconds() * 1000 / 4)),
        )
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        consumer.subscribe(
            [settings.clicks_topic], listener=_SeekToStoredOffsets(consumer, pool, settings)
        )
        await producer.start()
        try:
            await consumer.start()
            try:
                # Every polled batch allocates a dozen objects per event, all alive until
                # written: at the default threshold (700) the collector would scan them
                # dozens of times per batch for nothing (a fifth of the consumer's CPU).
                thresholds = gc.get_threshold()
                gc.set_threshold(_GC_THRESHOLD, *thresholds[1:])
                task = asyncio.create_task(
                    ClickConsumer(consumer, producer, pool, settings).run(),
                    name="click-consumer",
                )
                task.add_done_callback(_report_exit)
                try:
                    yield
                finally:
                    await cancel_and_wait(task)
                    gc.set_threshold(*thresholds)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()

    return ctx
