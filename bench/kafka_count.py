"""Counting the events on a topic: the sum of its partitions' end offsets."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


class TopicCounter:
    """A long-lived client on its own event loop, used from synchronous code."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._topic = topic
        self._partitions: list[TopicPartition] = []
        self._consumer = self._loop.run_until_complete(self._start(bootstrap))

    async def _start(self, bootstrap: str) -> AIOKafkaConsumer:
        # aiokafka binds its client to the running loop: built inside it.
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        self._consumer = consumer
        await consumer.start()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            # A topic created a moment ago (on a broker that just started) can be
            # described with no partitions yet; counting those would read 0 forever.
            deadline = time.monotonic() + 30
            numbers: list[int] = []
            while not numbers:
                described = await admin.describe_topics([self._topic])
                numbers = sorted(p["partition"] for d in described for p in d["partitions"])
                if not numbers:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"topic {self._topic} has no partitions")
                    await asyncio.sleep(0.2)
        finally:
            await admin.close()
        self._partitions = [TopicPartition(self._topic, p) for p in numbers]
        return consumer

    async def _total(self) -> int:
        ends = await self._consumer.end_offsets(self._partitions)
        return int(sum(ends.values()))

    def total(self) -> int:
        return self._loop.run_until_complete(self._total())

    def settle(self, baseline: int, expected: int, *, timeout: float = 10.0,
               quiet: float = 1.0) -> int:
        """Events since ``baseline`` once ``expected`` arrived or the count stopped growing
        for ``quiet`` seconds (a late producer batch), at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last, last_change = self.total(), time.monotonic()
        while last - baseline < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.total()
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change >= quiet:
                break
        return last - baseline

    def close(self) -> None:
        self._loop.run_until_complete(self._consumer.stop())
        self._loop.close()
