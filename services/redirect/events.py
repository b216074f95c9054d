"""Click events leave the request through a bounded queue; background tasks deliver them.

The request only appends to an in-memory deque (:meth:`ClickEmitter.emit`): it never
waits for Kafka nor for the disk. The sender task takes batches from the queue and
gives them to an idempotent producer (acks from all in-sync replicas, ~5 ms linger,
compressed, keyed by link id), then waits for every acknowledgement. A message that is
not acknowledged, or every message while Kafka is unreachable, is appended to the disk
spool (``services/redirect/spool.py``, fsync per batch) instead; when the queue is full,
new events go to an overflow list that the spool writer empties every few ms. Once
Kafka answers again, the replay task sends the spooled files, in order, and deletes
them. A clean shutdown sends what is queued, or spools it.

Loss window: a SIGKILL loses only what is in memory: the queue (events of the last few
milliseconds while Kafka keeps up; at most ``event_queue_size`` events) and the batch
being sent. Nothing that reached the spool is lost. ``dropped`` counts events that could
not be written to the spool either (disk full, or the spool directory unwritable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from time import monotonic
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer

from services.redirect.settings import Settings
from services.redirect.spool import Spool
from shared.events import ClickEvent

log = logging.getLogger(__name__)

_OVERFLOW_INTERVAL = 0.05
_SHUTDOWN_SEND_TIMEOUT = 5.0


class ClickEmitter:
    def __init__(self, settings: Settings) -> None:
        self._maxsize = settings.event_queue_size
        self._batch_size = settings.event_batch_size
        self._topic = settings.clicks_topic
        self._settings = settings
        self._queue: deque[ClickEvent] = deque()
        self._overflow: list[ClickEvent] = []
        self._wakeup = asyncio.Event()
        self.spool = Spool(settings.spool_dir)
        self._spool_lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._kafka_down_since: float | None = 0.0  # not connected yet
        self._stopping = False
        self._inflight: list[ClickEvent] = []
        self.sent = 0
        self.spooled = 0
        self.replayed = 0
        self.dropped = 0

    # ---- request side -------------------------------------------------------------
    def emit(self, event: ClickEvent) -> None:
        if len(self._queue) < self._maxsize:
            self._queue.append(event)
            if not self._wakeup.is_set():
                self._wakeup.set()
        else:
            self._overflow.append(event)

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._overflow)

    @property
    def kafka_up(self) -> bool:
        return self._producer is not None and self._kafka_down_since is None

    # ---- producer lifecycle -----------------------------------------------------------
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
            max_batch_size=256 * 1024,
        )

    async def _connect(self) -> bool:
        """Starts a producer if there is none; False (and Kafka marked down) on failure."""
        if self._producer is not None:
            return True
        producer = self._new_producer(self._settings.kafka_bootstrap)
        try:
            async with asyncio.timeout(self._settings.kafka_send_timeout.total_seconds()):
                await producer.start()
        except Exception as exc:
            log.warning("kafka unavailable (%r); spooling click events", exc)
            with contextlib.suppress(Exception):
                await producer.stop()
            self._mark_down()
            return False
        self._producer = producer
        self._kafka_down_since = None
        log.info("kafka producer connected")
        return True

    def _mark_down(self) -> None:
        if self._kafka_down_since is None:
            self._kafka_down_since = monotonic()

    def _should_try_kafka(self) -> bool:
        if self._kafka_down_since is None:
            return True
        retry = self._settings.kafka_retry_interval.total_seconds()
        return monotonic() - self._kafka_down_since >= retry

    # ---- background tasks -------------------------------------------------------------
    async def run_sender(self) -> None:
        """Until :meth:`stop_sender`: batches from the queue, delivered one at a time."""
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._inflight = self._take(self._batch_size)
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
                await self._spool(batch)

    async def run_replay(self) -> None:
        interval = self._settings.kafka_retry_interval.total_seconds()
        while True:
            await asyncio.sleep(interval / 2)
            if self._kafka_down_since is not None:
                if not self._should_try_kafka():
                    continue
                self._kafka_down_since = monotonic()  # at most one attempt per interval
                if self._producer is None:
                    if not await self._connect():
                        continue
                else:
                    self._kafka_down_since = None  # probe again with the next send
            await self.replay_spool()

    def _take(self, count: int) -> list[ClickEvent]:
        queue = self._queue
        take = min(count, len(queue))
        return [queue.popleft() for _ in range(take)]

    async def _deliver(self, batch: list[ClickEvent]) -> None:
        if self._kafka_down_since is not None or not await self._connect():
            await self._spool(batch)
            return
        failed = await self._send(batch)
        self.sent += len(batch) - len(failed)
        if failed:
            self._mark_down()
            await self._spool(failed)

    async def _send(self, batch: list[ClickEvent]) -> list[ClickEvent]:
        """Sends and waits for every acknowledgement; returns the events not acknowledged."""
        producer = self._producer
        assert producer is not None
        futures: list[Any] = []
        failed: list[ClickEvent] = []
        for event in batch:
            try:
                futures.append(
                    await producer.send(self._topic, value=event.to_bytes(), key=event.key())
                )
            except Exception as exc:
                log.warning("kafka send failed: %r", exc)
                futures.append(None)
        results = await asyncio.gather(*(f for f in futures if f is not None),
                                       return_exceptions=True)
        it = iter(results)
        for event, future in zip(batch, futures, strict=True):
            outcome = exc_or_none(next(it)) if future is not None else True
            if outcome is not None:
                failed.append(event)
        return failed

    async def _spool(self, batch: list[ClickEvent]) -> None:
        if not batch:
            return
        lines = [event.to_bytes() for event in batch]
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
                if not await self._send_raw(chunk):
                    self._mark_down()
                    await asyncio.to_thread(Spool.release, claimed)
                    return
                offset += sum(len(line) + 1 for line in chunk)
                self.replayed += len(chunk)
                await asyncio.to_thread(Spool.advance, claimed, offset)
            await asyncio.to_thread(Spool.done, claimed)
            log.info("replayed spool file %s", claimed.name)

    async def _send_raw(self, lines: list[bytes]) -> bool:
        """A spooled batch, all or nothing (a failed chunk is resent whole later; the
        consumer's event-id dedup absorbs the acknowledged part of it)."""
        producer = self._producer
        assert producer is not None
        try:
            futures = []
            for line in lines:
                event = ClickEvent.from_bytes(line)
                futures.append(await producer.send(self._topic, value=line, key=event.key()))
            await asyncio.gather(*futures)
        except Exception as exc:
            log.warning("spool replay interrupted: %r", exc)
            return False
        return True

    async def shutdown(self) -> None:
        """Sends what is queued (bounded wait), spools the rest, closes the producer."""
        # The interrupted batch (if the sender was cancelled) goes again: an event the
        # broker had acknowledged is then sent twice, which the consumer's event-id
        # dedup absorbs; losing it would not be recoverable.
        batch = self._inflight + self._take(len(self._queue)) + self._overflow
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


def exc_or_none(result: object) -> BaseException | None:
    return result if isinstance(result, BaseException) else None


def emitter_ctx(emitter: ClickEmitter) -> Callable[[web.Application], AsyncIterator[None]]:
    """Starts the sender, overflow and replay tasks; never fails the app's start:
    without Kafka, events go to the spool until it is back."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await emitter._connect()
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
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await emitter.shutdown()

    return ctx
