"""Auto-pipelining: lookups made while a round trip is under way share the next MGET.

A naive handler pays one round trip (and one pass through the client library, which is
where most of the cost is: ../shared/reference/performance.md) per request. Here each
lookup appends its keys to the pending batch and awaits a future; the first lookup of a
tick schedules a flush with ``call_soon``, which sends every pending key in ONE ``MGET``
and hands each caller its slice of the reply. Under load the per-request client cost
is divided by the batch size. The command is packed here (RESP is trivial for one
MGET) and sent on a pooled connection: redis-py's generic packing of a few hundred
arguments costs more than the round trip it shares.

At most ``max_in_flight`` batches are out at once; lookups arriving meanwhile wait for
the next free slot and then leave together. So batches grow with the load instead of
multiplying: one batch per event-loop tick kept every pooled connection busy when Redis
slowed down for a moment (it shares the cores), and the next lookup then waited up to
the pool timeout (500 ms) for a connection, failed, and fell back to Postgres: that was
the p99 of hundreds of milliseconds at 256 connections (docs/benchmarks.md). A batch
carries at most ``max_lookups`` lookups so that one reply stays small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as aioredis

Reply = list[bytes | None]
_Waiter = tuple[Sequence[str], "asyncio.Future[Reply]"]


def pack_mget(keys: list[str]) -> bytes:
    """``MGET key...`` in the Redis protocol (RESP2 array of bulk strings)."""
    parts = [b"*%d\r\n$4\r\nMGET\r\n" % (len(keys) + 1)]
    for key in keys:
        raw = key.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class MGetBatcher:
    def __init__(self, client: aioredis.Redis, max_lookups: int, max_in_flight: int) -> None:
        self._client = client
        self._max = max_lookups
        self._max_in_flight = max_in_flight
        self._waiters: list[_Waiter] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.lookups = 0

    def mget(self, keys: Sequence[str]) -> asyncio.Future[Reply]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._waiters.append((keys, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """Sends pending lookups while a slot is free; the rest wait for :meth:`_done`."""
        self._scheduled = False
        while self._waiters and self._in_flight < self._max_in_flight:
            waiters = self._waiters[: self._max]
            del self._waiters[: self._max]
            self._in_flight += 1
            task = asyncio.create_task(self._send(waiters))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        self._flush()

    async def _send(self, waiters: list[_Waiter]) -> None:
        self.batches += 1
        self.lookups += len(waiters)
        keys: list[str] = []
        for wanted, _ in waiters:
            keys.extend(wanted)
        try:
            reply = await self._roundtrip(pack_mget(keys))
        except BaseException as exc:
            for _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        start = 0
        for wanted, future in waiters:
            end = start + len(wanted)
            if not future.done():
                future.set_result(reply[start:end])
            start = end

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
        self._max_in_flight = 0  # nothing more is sent
        for _, future in self._waiters:
            future.cancel()
        self._waiters.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
