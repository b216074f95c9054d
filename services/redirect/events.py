"""Click events leave the request through a bounded queue; background tasks deliver them.

The request only appends a draft tuple to an in-memory deque (:meth:`ClickEmitter.emit`):
it never waits for Kafka nor for the disk. The sender task takes batches from the
queue, encodes them (:mod:`services.redirect.clicks`), and hands them to an idempotent
producer (acks from all in-sync replicas, ~5 ms linger, compressed) as one record
batch per partition, each event on the partition of its link id (Kafka's default
murmur2 partitioner, so one link's events stay in order), then waits for every
acknowledgement. Per-partition batches instead of one ``send()`` per event: aiokafka's
per-message path would cost more CPU than the request itself. A message that is
not acknowledged, or every message while Kafka is unreachable, is appended to the disk
spool (``services/redirect/spool.py``, fsync per batch) instead; when the queue is full,
new events go to an overflow list that the spool writer empties every few ms. Once
Kafka answers again, the replay task sends the spooled files, in order, and deletes
them. A clean shutdown sends what is queued, or spools it.

Loss window: a SIGKILL loses only what is in memory: the queue (events of the last few
milliseconds while Kafka keeps up; at most ``event_queue_size`` events) and the batch
being sent (which, while Kafka accepts connections but does not acknowledge, waits up
to ``kafka_send_timeout`` before it is spooled). Nothing that reached the spool is
lost. ``dropped`` counts events that could not be written to the spool either (disk
full, or the spool directory unwritable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from time import monotonic
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from services.redirect.clicks import Draft, Encoder
from services.redirect.settings import Settings
from services.redirect.spool import Spool
from shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_OVERFLOW_INTERVAL = 0.05
_SHUTDOWN_SEND_TIMEOUT = 5.0
_START_CONNECT_TIMEOUT = 3.0
_STOP_TIMEOUT = 2.0

# An encoded event: (link id, the JSON of a ClickEvent).
Encoded = tuple[int, bytes]


@lru_cache(maxsize=65536)
def partition_for(link_id: int, partitions: int) -> int:
    """Kafka's default partitioner on the key ``str(link_id)`` (what ``ClickEvent.key()``
    gives), so a consumer sees the same placement as a keyed ``send()`` would make."""
    return int(murmur2(str(link_id).encode()) & 0x7FFFFFFF) % partitions


class ClickEmitter:
    def __init__(self, settings: Settings, encoder: Encoder) -> None:
        self._maxsize = settings.event_queue_size
        self._batch_size = settings.event_batch_size
        self._topic = settings.clicks_topic
        self._settings = settings
        self.encoder = encoder
        self._queue: deque[Draft] = deque()
        self._overflow: list[Draft] = []
        self._wakeup = asyncio.Event()
        self.spool = Spool(settings.spool_dir)
        self._spool_lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._partitions = 0
        self._kafka_down_since: float | None = 0.0  # not connected yet
        self._stopping = False
        self._inflight: list[Encoded] = []
        self.sent = 0
        self.spooled = 0
        self.replayed = 0
        self.dropped = 0

    # ---- request side -------------------------------------------------------------
    def emit(self, draft: Draft) -> None:
        if len(self._queue) < self._maxsize:
            self._queue.append(draft)
            if not self._wakeup.is_set():
                self._wakeup.set()
        else:
            self._overflow.append(draft)

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._overflow)

    @property
    def kafka_up(self) -> bool:
        return self._producer is not None and self._kafka_down_since is None

    # ---- producer lifecycle -------------------------------------------------------
    def _new_producer(self, bootstrap: str) -> AIOKafkaProducer:
        timeout_ms = int(self._settings.kafka_send_timeout.total_seconds() * 1000)
        compression = self._settings.kafka_compression
        return AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            compression_type=None if compression == "none" else compression,
            request_timeout_ms=timeout_ms,
            max_batch_size=512 * 1024,
        )

    async def _connect(self, limit: float | None = None) -> bool:
        """Starts a producer if there is none; False (and Kafka marked down) on failure."""
        if self._producer is not None:
            return True
        producer = self._new_producer(self._settings.kafka_bootstrap)
        try:
            limit = limit or self._settings.kafka_send_timeout.total_seconds()
            async with asyncio.timeout(limit):
                await producer.start()
                self._partitions = len(await producer.partitions_for(self._topic))
        except Exception as exc:
            log.warning("kafka unavailable (%r); spooling click events", exc)
            with contextlib.suppress(Exception):
                await producer.stop()
            self._mark_down()
            return False
        self._producer = producer
        self._kafka_down_since = None
        log.info("kafka producer connected (%d partitions)", self._partitions)
        return True

    def _mark_down(self) -> None:
        if self._kafka_down_since is None:
            self._kafka_down_since = monotonic()

    async def _reset_producer(self) -> None:
        """After a failed send: Kafka is down, and the producer is replaced by a new one
        when it is back. An idempotent producer that lived through a broker restart can
        be left with sequence numbers the broker no longer accepts
        (OutOfOrderSequenceNumber, forever); a new producer gets a new producer id."""
        self._mark_down()
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await producer.stop()

    def _should_try_kafka(self) -> bool:
        if self._kafka_down_since is None:
            return True
        retry = self._settings.kafka_retry_interval.total_seconds()
        return monotonic() - self._kafka_down_since >= retry

    # ---- background tasks ---------------------------------------------------------
    async def run_sender(self) -> None:
        """Until :meth:`stop_sender`: batches from the queue, delivered one at a time."""
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._inflight = self._encode(self._take(self._batch_size))
            await self._deliver(self._inflight)
            self._inflight = []

    async def stop_sender(self, task: asyncio.Task[None]) -> None:
        """Lets the sender finish its batch and the queue (bounded), then stops it."""
        self._stopping = True
        self._wakeup.set()
        try:
            async with asyncio.timeout(_SHUTDOWN_SEND_TIMEOUT):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_overflow(self) -> None:
        while True:
            await asyncio.sleep(_OVERFLOW_INTERVAL)
            if self._overflow:
                batch, self._overflow = self._overflow, []
                await self._spool(self._encode(batch))

    async def run_replay(self) -> None:
        interval = self._settings.kafka_retry_interval.total_seconds()
        while True:
            await asyncio.sleep(interval / 2)
            if self._kafka_down_since is not None:
                if not self._should_try_kafka():
                    continue
                self._kafka_down_since = monotonic()  # at most one attempt per interval
                if not await self._connect():
                    continue
            await self.replay_spool()

    def _take(self, count: int) -> list[Draft]:
        queue = self._queue
        take = min(count, len(queue))
        return [queue.popleft() for _ in range(take)]

    def _encode(self, drafts: list[Draft]) -> list[Encoded]:
        encode = self.encoder.encode
        return [(draft[1], encode(draft)) for draft in drafts]

    async def _deliver(self, batch: list[Encoded]) -> None:
        if self._kafka_down_since is not None or not await self._connect():
            await self._spool(batch)
            return
        failed = await self._send(batch)
        self.sent += len(batch) - len(failed)
        if failed:
            await self._spool(failed)  # first: the events are safe before anything else
            await self._reset_producer()

    async def _send(self, batch: list[Encoded]) -> list[Encoded]:
        """One record batch per partition; waits for every acknowledgement and returns
        the events whose batch was not acknowledged."""
        producer = self._producer
        if producer is None:  # reset by the other task meanwhile: nothing was sent
            return list(batch)
        by_partition: dict[int, list[Encoded]] = {}
        for item in batch:
            by_partition.setdefault(partition_for(item[0], self._partitions), []).append(item)
        pending: list[tuple[Any, list[Encoded]]] = []
        failed: list[Encoded] = []
        for partition, items in by_partition.items():
            start = 0
            while start < len(items):
                builder = producer.create_batch()
                end = start
                while end < len(items):
                    link_id, value = items[end]
                    if builder.append(timestamp=None, key=str(link_id).encode(),
                                      value=value) is None:
                        break
                    end += 1
                if end == start:  # one event larger than a batch: cannot happen in practice
                    failed.append(items[start])
                    start += 1
                    continue
                chunk = items[start:end]
                try:
                    future = await producer.send_batch(builder, self._topic, partition=partition)
                    pending.append((future, chunk))
                except Exception as exc:
                    log.warning("kafka send failed: %r", exc)
                    failed.extend(chunk)
                start = end
        results = await asyncio.gather(*(f for f, _ in pending), return_exceptions=True)
        for result, (_, chunk) in zip(results, pending, strict=True):
            if isinstance(result, BaseException):
                log.warning("kafka batch not acknowledged: %r", result)
                failed.extend(chunk)
        return failed

    async def _spool(self, batch: list[Encoded]) -> None:
        if not batch:
            return
        lines = [value for _, value in batch]
        async with self._spool_lock:
            try:
                await asyncio.to_thread(self.spool.append, lines)
            except OSError as exc:
                log.error("click events lost: spool write failed: %r", exc)
                self.dropped += len(batch)
                return
        self.spooled += len(batch)

    async def replay_spool(self) -> None:
        """Sends every spooled event, oldest file first, while Kafka takes them."""
        async with self._spool_lock:
            await asyncio.to_thread(self.spool.seal)
        while self._kafka_down_since is None and self._producer is not None:
            claimed = await asyncio.to_thread(self.spool.claim)
            if claimed is None:
                return
            offset, lines = await asyncio.to_thread(Spool.read, claimed)
            for start in range(0, len(lines), self._batch_size):
                chunk = lines[start : start + self._batch_size]
                # A failed chunk is resent whole later; the consumer's event-id dedup
                # absorbs the part of it the broker had acknowledged.
                if await self._send([(json.loads(line)["link_id"], line) for line in chunk]):
                    await asyncio.to_thread(Spool.release, claimed)
                    await self._reset_producer()
                    return
                offset += sum(len(line) + 1 for line in chunk)
                self.replayed += len(chunk)
                await asyncio.to_thread(Spool.advance, claimed, offset)
            await asyncio.to_thread(Spool.done, claimed)
            log.info("replayed spool file %s", claimed.name)

    async def shutdown(self) -> None:
        """Sends what is queued (bounded wait), spools the rest, closes the producer."""
        # The interrupted batch (if the sender was cancelled) goes again: an event the
        # broker had acknowledged is then sent twice, which the consumer's event-id
        # dedup absorbs; losing it would not be recoverable.
        batch = self._inflight + self._encode(self._take(len(self._queue)) + self._overflow)
        self._inflight, self._overflow = [], []
        if batch and self._producer is not None and self._kafka_down_since is None:
            try:
                async with asyncio.timeout(_SHUTDOWN_SEND_TIMEOUT):
                    failed = await self._send(batch)
            except TimeoutError:
                failed = batch  # unacknowledged: spool (dedup by event id covers a late ack)
            self.sent += len(batch) - len(failed)
            batch = failed
        await self._spool(batch)
        async with self._spool_lock:
            await asyncio.to_thread(self.spool.seal)
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None


def emitter_ctx(emitter: ClickEmitter) -> Callable[[web.Application], AsyncIterator[None]]:
    """Starts the sender, overflow and replay tasks; never fails the app's start:
    without Kafka, events go to the spool until it is back."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # Bounded: a black-holed Kafka must not hold the service's start for long.
        await emitter._connect(limit=_START_CONNECT_TIMEOUT)
        sender = asyncio.create_task(emitter.run_sender(), name="clicks-sender")
        tasks = [
            asyncio.create_task(emitter.run_overflow(), name="clicks-overflow"),
            asyncio.create_task(emitter.run_replay(), name="clicks-replay"),
        ]
        try:
            yield
        finally:
            await emitter.stop_sender(sender)
            for task in tasks:
                await cancel_and_wait(task)
            await emitter.shutdown()

    return ctx
