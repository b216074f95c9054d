"""Click events leave the request through a bounded queue; a background task sends them.

The request only does ``put_nowait``: it never waits for Kafka. The producer asks for
acknowledgement from all in-sync replicas and is idempotent, so a retried batch is not
written twice by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiokafka import AIOKafkaProducer

from services.redirect.settings import Settings
from shared.events import ClickEvent

log = logging.getLogger(__name__)


class ClickEmitter:
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[ClickEvent] = asyncio.Queue(maxsize)
        self.sent = 0
        self.dropped = 0

    def emit(self, event: ClickEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self, producer: AIOKafkaProducer, topic: str, batch_size: int) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._send(producer, topic, batch)

    async def drain(self, producer: AIOKafkaProducer, topic: str) -> None:
        batch: list[ClickEvent] = []
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        if batch:
            await self._send(producer, topic, batch)

    async def _send(
        self, producer: AIOKafkaProducer, topic: str, batch: list[ClickEvent]
    ) -> None:
        futures = [
            await producer.send(topic, value=event.to_bytes(), key=event.key())
            for event in batch
        ]
        await asyncio.gather(*futures)
        self.sent += len(batch)


def emitter_ctx(
    settings: Settings, emitter: ClickEmitter
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            compression_type="gzip",
        )
        await producer.start()
        task = asyncio.create_task(
            emitter.run(producer, settings.clicks_topic, settings.event_batch_size)
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await emitter.drain(producer, settings.clicks_topic)
            await producer.stop()

    return ctx
