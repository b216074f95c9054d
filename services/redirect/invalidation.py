"""The subscriber that drops cached records as soon as the management service
announces a change (message = the changed Redis key) on ``CHANGES_CHANNEL``.

It reconnects by itself when Redis goes away; after every (re)subscription it clears
the whole cache, because announcements sent while it was away are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from services.redirect.resolve import Resolver
from shared.errors import REDIS_FAILURES
from shared.linkrecord import CHANGES_CHANNEL
from shared.tasks import CleanupCtx, background_task_ctx

log = logging.getLogger(__name__)

_RECONNECT_DELAY = 1.0
_POLL_TIMEOUT = 1.0


async def listen(resolver: Resolver, subscribed: asyncio.Event) -> None:
    while True:
        pubsub = resolver.redis.pubsub()
        try:
            await pubsub.subscribe(CHANGES_CHANNEL)
            resolver.clear()
            subscribed.set()
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=_POLL_TIMEOUT
                )
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    resolver.invalidate(data.decode() if isinstance(data, bytes) else data)
        except REDIS_FAILURES as exc:
            subscribed.clear()
            log.warning("change subscription lost (%r); cache limited to its TTL", exc)
            await asyncio.sleep(_RECONNECT_DELAY)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def invalidation_ctx(resolver: Resolver, subscribed: asyncio.Event) -> CleanupCtx:
    async def run(app: web.Application) -> None:
        await listen(resolver, subscribed)

    return background_task_ctx("cache-invalidation", run)
