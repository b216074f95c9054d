"""Topic administration: services make sure their topics exist before using them."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

DEFAULT_PARTITIONS = 4


async def ensure_topics(bootstrap: str, topics: list[str], partitions: int = DEFAULT_PARTITIONS
                        ) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1)
                     for t in missing]
                )
    finally:
        await admin.close()
