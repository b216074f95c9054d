"""Click events leave the request through a bounded queue; background tasks deliver them.

The request only appends a draft tuple to an in-memory deque (:meth:`ClickEmitter.emit`):
it never waits for Kafka nor for the disk. The sender task takes batches from the
queue, encodes them (:mod:`services.redirect.clicks`), and hands them to an idempotent
producer (acks from all in-sync replicas, ~5 ms linger, compressed) as one record
batch per partition, each event on the partition of its link id (Kafka's default
murmur2 partitioner, so one link's events stay in order), then waits for every
acknowledgement, at most ``kafka_ack_timeout`` (250 ms by default). Per-partition
batches instead of one ``send()`` per event: aiokafka's per-message path would cost more
CPU than the request itself.

A batch that fails, or is not acknowledged within ``kafka_ack_timeout``, is appended to
the disk spool (``services/redirect/spool.py``) at once; the producer is then abandoned
and Kafka counts as down. While it is down, the sender appends each batch to the spool as
soon as it takes it from the queue (every few ms under load), so no event waits in
memory for Kafka. Every ``kafka_retry_interval`` the replay task tries a new producer;
once one is connected, it sends the spooled files, in order, and deletes them. When the
queue is full, new events go to an overflow list that the housekeeping task spools every
50 ms. A clean shutdown sends what is queued (same bound), or spools it.

Loss window: a SIGKILL loses only the events in memory that have not reached the spool:
the batch being sent and the events queued behind it. The batch waits at most
``kafka_ack_timeout`` and those behind it were accepted during that wait, so when Kafka
stops answering while it was acknowledging promptly (a broker dying, the usual failure,
measured in docs/reliability.md) the window is the last ``kafka_ack_timeout`` of traffic
plus one spool write. The worst case is twice that: Kafka acknowledging a batch just
within the bound, then not the next one. While Kafka acknowledges in a few ms, the window
is those few ms plus ``event_linger`` (15 ms: the sender lets a batch fill that long);
while Kafka is down, the events since the last spool write (``event_linger`` too).
Anything written to the spool survives a SIGKILL (spool.py says why no fsync is needed for
that, and what a machine crash can lose).

Counters: every accepted event is counted once, as ``sent`` (acknowledged by Kafka),
``spooled`` (written to the spool; counted again as ``replayed`` once the spool delivers
it) or ``dropped`` (the spool could not be written either: disk full, directory
unwritable; or, a bug, logged, the event could not be encoded). A batch spooled after
the bound that Kafka then acknowledges late counts as spooled and is delivered again by
the replay: the stats consumer keeps the first copy only, by its unique key on (link id,
time, event id), all three fixed when the edge makes the event (raw clicks are kept
``raw_click_retention``, 30 days).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from time import monotonic, time
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.partitioner import murmur2

from services.redirect.clicks import Draft, Encoder
from services.redirect.settings import Settings
from services.redirect.spool import Spool
from shared.tasks import cancel_and_wait, finish_then_cancel

log = logging.getLogger(__name__)

_HOUSEKEEPING_INTERVAL = 0.05
_SHUTDOWN_SEND_TIMEOUT = 5.0
_START_CONNECT_TIMEOUT = 3.0
_STOP_TIMEOUT = 2.0

# An encoded event: (link id, the JSON of a ClickEvent).
Encoded = tuple[int, bytes]


@lru_cache(maxsize=65536)
def route_for(link_id: int, partitions: int) -> tuple[int, bytes]:
    """The partition and the key of a link's events: the key is ``str(link_id)`` (what
    ``ClickEvent.key()`` gives) and the partition Kafka's default partitioner's choice
    for it, so a consumer sees the same placement as a keyed ``send()`` would make."""
    key = str(link_id).encode()
    return int(murmur2(key) & 0x7FFFFFFF) % partitions, key


def fill_batch(builder: Any, entries: list[tuple[bytes, Encoded]], start: int) -> int:
    """Appends ``entries[start:]`` (key, event) to a producer batch while they fit; the
    index after the last one appended.

    Straight into the record builder that ``BatchBuilder.append`` wraps: its Python
    wrapper (keyword arguments, serializer checks, metadata) was a third of the
    per-event cost of a batch. The wrapper's record count is kept up to date, as its own
    ``append`` does. One timestamp per batch (the events carry their own ``ts``)."""
    records = builder._builder
    offset = builder._relative_offset
    timestamp = int(time() * 1000)
    no_headers: list[tuple[str, bytes]] = []  # read, never kept, by the builder
    end, count = start, len(entries)
    while end < count:
        key, (_, value) = entries[end]
        if records.append(offset, timestamp, key, value, no_headers) is None:
            break  # full
        offset += 1
        end += 1
    builder._relative_offset = offset
    return end


async def abort_producer(producer: AIOKafkaProducer, limit: float) -> None:
    """Closes ``producer`` without delivering what it holds (its events are spooled).

    aiokafka has no public abort. ``stop()`` first waits until every pending batch is
    acknowledged or fails, and an idempotent producer never expires a batch whose
    partition has a leader: it retries it until the broker takes it. Meanwhile, while a
    partition has no leader (a broker stopping), its sender refreshes metadata in a loop
    without backoff (aio-libs/aiokafka#267). Measured in test_kafka_stopped_then_started:
    about 3000 attempts, and as many error log lines, a second, most of a core taken from
    the visitors on a 2-core machine. So: the sender task is cancelled first (it then
    finishes its in-flight requests, one attempt each), then the batches are failed
    (:func:`fail_pending`), and ``stop()`` only closes the connections.
    """
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    try:
        async with asyncio.timeout(limit):
            if isinstance(task, asyncio.Future) and not task.done():
                task.cancel()
                await asyncio.wait({task})
            fail_pending(producer)
            await producer.stop()
    except Exception as exc:  # closing an abandoned producer: nothing left to save
        log.info("abandoned kafka producer closed with %r", exc)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_STOP_TIMEOUT):
                await producer.client.close()


def fail_pending(producer: AIOKafkaProducer) -> None:
    """Fails every batch ``producer`` holds (its sender stopped), as aiokafka itself does
    when its sender dies (``MessageAccumulator.fail_all``), with two repairs of that path
    so that nothing is logged: a batch re-enqueued for a retry has left the pending set
    but keeps the callback that removes it from there (KeyError in a callback), and the
    drain waiter of a batch never drained keeps an exception nobody retrieves. Private
    attributes of the pinned aiokafka; ``tests/redirect/test_events.py`` fails if they
    change. Without them the producer stops the slow way."""
    accumulator = getattr(producer, "_message_accumulator", None)
    queued = getattr(accumulator, "_batches", None)
    pending = getattr(accumulator, "_pending_batches", None)
    if accumulator is None or queued is None or pending is None:
        return
    pending.update(batch for queue in queued.values() for batch in queue)
    batches = list(pending)
    accumulator.fail_all(KafkaConnectionError("producer abandoned: its events were spooled"))
    for batch in batches:
        waiter = getattr(batch, "_drain_waiter", None)
        if waiter is not None and waiter.done() and not waiter.cancelled():
            waiter.exception()  # retrieved: nobody else waits for it


def pace_metadata_retries(producer: AIOKafkaProducer) -> None:
    """Makes a failed metadata update wait the retry backoff before the next one.

    aiokafka retries a failed metadata update at once (aio-libs/aiokafka#267): with the
    broker just stopped, the producer logged ~900 connection errors in 150 ms on the
    edge's core until the ack bound abandoned it, and the visitors on that core waited
    behind it (docs/reliability.md). A private method of the pinned aiokafka;
    ``tests/redirect/test_events.py`` fails if it changes. Without it nothing breaks,
    the loop only spins again."""
    client = producer.client
    update = getattr(client, "_metadata_update", None)
    backoff = getattr(client, "_retry_backoff", None)
    if update is None or not isinstance(backoff, int | float):
        return

    async def update_then_pause(cluster_metadata: Any, topics: Any) -> bool:
        updated: bool = await update(cluster_metadata, topics)
        if not updated:
            await asyncio.sleep(backoff)
        return updated

    client._metadata_update = update_then_pause


class ClickEmitter:
    def __init__(self, settings: Settings, encoder: Encoder) -> None:
        self._maxsize = settings.event_queue_size
        self._batch_size = settings.event_batch_size
        self._linger = settings.event_linger.total_seconds()
        self._topic = settings.clicks_topic
        self._settings = settings
        self.encoder = encoder
        self._queue: deque[Draft] = deque()
        self._overflow: list[Draft] = []
        self._wakeup = asyncio.Event()
        self._idle = False  # the sender waits for _wakeup
        self._ack_timeout = settings.kafka_ack_timeout.total_seconds()
        self.spool = Spool(settings.spool_dir, settings.spool_fsync_interval.total_seconds())
        self._spool_lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._closing: set[asyncio.Task[None]] = set()
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
            if self._idle:  # an attribute, not Event.is_set(): this runs per request
                self._idle = False
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
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            compression_type=None if compression == "none" else compression,
            request_timeout_ms=timeout_ms,
            max_batch_size=512 * 1024,
        )
        pace_metadata_retries(producer)
        return producer

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
                async with asyncio.timeout(_STOP_TIMEOUT):  # never hold the sender long
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

    def _abandon_producer(self, *pending: asyncio.Future[Any]) -> None:
        """Kafka is down: the producer is aborted in the background (its events are
        spooled), and ``pending`` sends are cancelled after it. A new producer is made
        when Kafka is back: an idempotent producer that lived through a broker restart
        can be left with sequence numbers the broker no longer accepts
        (OutOfOrderSequenceNumber, forever); a new producer gets a new id."""
        self._mark_down()
        producer, self._producer = self._producer, None
        if producer is None:
            return
        task = asyncio.create_task(self._close(producer, pending), name="clicks-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, producer: AIOKafkaProducer, pending: tuple[asyncio.Future[Any], ...]
                     ) -> None:
        try:
            # In-flight requests to a silent broker end within the request timeout.
            await abort_producer(producer, self._settings.kafka_send_timeout.total_seconds()
                                 + _STOP_TIMEOUT)
        finally:
            for future in pending:
                future.cancel()

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
                self._idle = True
                await self._wakeup.wait()
                self._idle = False
                continue
            if len(self._queue) < self._batch_size and not self._stopping:
                # Fewer, larger produce requests: aiokafka costs ~1 ms of CPU per request
                # whatever its size, so under load this short wait saves several us per
                # event; it adds at most ``event_linger`` to what a SIGKILL can lose.
                await asyncio.sleep(self._linger)
            self._inflight = self._encode(self._take(self._batch_size))
            try:
                await self._deliver(self._inflight)
            except Exception:  # a bug: it must not stop delivery of every later event
                log.exception("click delivery failed; spooling the batch")
                await self._spool(self._inflight)
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
        except Exception:  # the shutdown still sends or spools what is queued
            log.exception("click sender failed")

    async def run_housekeeping(self) -> None:
        """Every 50 ms: spools the overflow, and fsyncs the spool file when it is due."""
        while True:
            await asyncio.sleep(_HOUSEKEEPING_INTERVAL)
            if self._overflow:
                batch, self._overflow = self._overflow, []
                # Taken from memory: cut off by the shutdown's cancel, it would be lost.
                await finish_then_cancel(self._spool(self._encode(batch)))
            elif self.spool.sync_due:
                async with self._spool_lock:
                    try:
                        await asyncio.to_thread(self.spool.sync_if_due)
                    except OSError as exc:
                        log.error("spool fsync failed: %r", exc)

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
        try:
            return self.encoder.encode_many(drafts)
        except Exception:
            return self._encode_each(drafts)

    def _encode_each(self, drafts: list[Draft]) -> list[Encoded]:
        """One by one, dropping (and counting) the drafts that cannot be encoded: a bug
        there must cost those events, not stop the sender and every event after them."""
        encoded: list[Encoded] = []
        failed = 0
        for draft in drafts:
            try:
                encoded.append((draft[1], self.encoder.encode(draft)))
            except Exception:
                if not failed:
                    log.exception("click event cannot be encoded, dropped: %.200r", draft)
                failed += 1
        self.dropped += failed
        return encoded

    async def _deliver(self, batch: list[Encoded]) -> None:
        """Sends ``batch``; spools whatever is not acknowledged within the ack bound."""
        if self._kafka_down_since is not None or not await self._connect():
            await self._spool(batch)
            return
        sending = asyncio.ensure_future(self._send(batch))
        done, _ = await asyncio.wait({sending}, timeout=self._ack_timeout)
        if done:
            failed = _outcome(sending, batch)
            self.sent += len(batch) - len(failed)
            if failed:
                await self._spool(failed)  # first: the events are safe before anything else
                self._abandon_producer()
            return
        # Not acknowledged in time: to disk now, where a SIGKILL cannot take it. Should
        # Kafka still acknowledge it, the replay sends it again and the consumer drops
        # the copy by event id.
        await self._spool(batch)
        if sending.done() and not _outcome(sending, batch):
            return  # acknowledged while it was being spooled: Kafka is fine
        log.warning("kafka did not acknowledge a batch within %.0f ms; spooling click events",
                    self._ack_timeout * 1000)
        self._abandon_producer(sending)

    async def _send(self, batch: list[Encoded]) -> list[Encoded]:
        """One record batch per partition; waits for every acknowledgement and returns
        the events whose batch was not acknowledged."""
        producer = self._producer
        if producer is None:  # reset by the other task meanwhile: nothing was sent
            return list(batch)
        by_partition: dict[int, list[tuple[bytes, Encoded]]] = {}
        partitions = self._partitions
        for item in batch:
            partition, key = route_for(item[0], partitions)
            entries = by_partition.get(partition)
            if entries is None:
                entries = by_partition[partition] = []
            entries.append((key, item))
        pending: list[tuple[Any, list[Encoded]]] = []
        failed: list[Encoded] = []
        for partition, entries in by_partition.items():
            start = 0
            while start < len(entries):
                builder = producer.create_batch()
                end = fill_batch(builder, entries, start)
                if end == start:  # one event larger than a batch: cannot happen in practice
                    failed.append(entries[start][1])
                    start += 1
                    continue
                chunk = [item for _, item in entries[start:end]]
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
            data, offset = await asyncio.to_thread(Spool.load, claimed)
            for chunk, end in Spool.batches(data, offset, self._batch_size):
                # A failed chunk is resent whole later; the consumer's event-id dedup
                # absorbs the part of it the broker had acknowledged.
                if chunk and await self._send(chunk):
                    await asyncio.to_thread(Spool.release, claimed)
                    self._abandon_producer()
                    return
                self.replayed += len(chunk)
                await asyncio.to_thread(Spool.advance, claimed, end)
            await asyncio.to_thread(Spool.done, claimed)
            log.info("replayed spool file %s", claimed.name)

    async def shutdown(self) -> None:
        """Sends what is queued (within the ack bound), spools the rest, closes the
        producer (bounded)."""
        # The interrupted batch (if the sender was cancelled) goes again: an event the
        # broker had acknowledged is then sent twice, which the consumer's event-id
        # dedup absorbs; losing it would not be recoverable.
        batch = self._inflight + self._encode(self._take(len(self._queue)) + self._overflow)
        self._inflight, self._overflow = [], []
        if batch:
            await self._deliver(batch)
        async with self._spool_lock:
            await asyncio.to_thread(self.spool.seal)
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await producer.stop()
        if self._closing:  # abandoned producers still closing
            await asyncio.wait(set(self._closing), timeout=_STOP_TIMEOUT)


def _outcome(sending: asyncio.Future[list[Encoded]], batch: list[Encoded]) -> list[Encoded]:
    """The events of a finished send that Kafka did not acknowledge (all of them if the
    send itself failed: the sender must survive anything and spool the batch)."""
    if sending.cancelled():
        return batch
    error = sending.exception()
    if error is not None:
        log.error("click event send failed: %r", error)
        return batch
    return sending.result()


def emitter_ctx(emitter: ClickEmitter) -> Callable[[web.Application], AsyncIterator[None]]:
    """Starts the sender, overflow and replay tasks; never fails the app's start:
    without Kafka, events go to the spool until it is back."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # Bounded: a black-holed Kafka must not hold the service's start for long.
        await emitter._connect(limit=_START_CONNECT_TIMEOUT)
        sender = asyncio.create_task(emitter.run_sender(), name="clicks-sender")
        tasks = [
            asyncio.create_task(emitter.run_housekeeping(), name="clicks-housekeeping"),
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
