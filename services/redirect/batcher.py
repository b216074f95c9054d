"""Auto-pipelining: lookups started in the same event-loop tick share one Redis MGET.

A naive handler pays one round trip (and one pass through the client library, which is
where most of the cost is: ../shared/reference/performance.md) per request. Here each
lookup appends its keys to the pending batch and awaits a future; the first lookup of a
tick schedules a flush with ``call_soon``, which sends every pending key in ONE ``MGET``
and hands each caller its slice of the reply. Under load the per-request client cost
is divided by the batch size. The command is packed here (RESP is trivial for one
MGET) and sent on a pooled connection: redis-py's generic packing of a few hundred
arguments costs more than the round trip it shares. Batches are capped so one reply
stays small; several batches may be in flight at once on different pooled connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as aioredis

Reply = list[bytes | None]


def pack_mget(keys: list[str]) -> bytes:
    """``MGET key...`` in the Redis protocol (RESP2 array of bulk strings)."""
    parts = [b"*%d\r\n$4\r\nMGET\r\n" % (len(keys) + 1)]
    for key in keys:
        raw = key.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class MGetBatcher:
    def __init__(self, client: aioredis.Redis, max_lookups: int) -> None:
        self._client = client
        self._max = max_lookups
        self._keys: list[str] = []
        self._waiters: list[tuple[int, int, asyncio.Future[Reply]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.lookups = 0

    def mget(self, keys: Sequence[str]) -> asyncio.Future[Reply]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        start = len(self._keys)
        self._keys.extend(keys)
        self._waiters.append((start, len(keys), future))
        if len(self._waiters) >= self._max:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        if not self._waiters:
            return
        keys, waiters = self._keys, self._waiters
        self._keys, self._waiters = [], []
        task = asyncio.create_task(self._send(keys, waiters))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, keys: list[str], waiters: list[tuple[int, int, asyncio.Future[Reply]]]
    ) -> None:
        self.batches += 1
        self.lookups += len(waiters)
        try:
            reply = await self._roundtrip(pack_mget(keys))
        except BaseException as exc:
            for _, _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for start, count, future in waiters:
            if not future.done():
                future.set_result(reply[start : start + count])

    async def _roundtrip(self, packed: bytes) -> Reply:
        pool = self._client.connection_pool
        conn = await pool.get_connection("MGET")  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(packed)
            reply: Reply = await conn.read_response()
        except BaseException:
            await conn.disconnect()  # its state is unknown: never reuse it
            raise
        finally:
            await pool.release(conn)
        return reply

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
