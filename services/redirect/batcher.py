"""Auto-pipelining: lookups made while a round trip is under way share the next MGET.

A naive handler pays one round trip (and one pass through the client library, which is
where most of the cost is: ../shared/reference/performance.md) per request. Here each
lookup appends its keys to the pending batch and awaits a future; the first lookup of a
tick schedules a flush with ``call_soon``, which sends every pending key in ONE ``MGET``
and hands each caller its slice of the reply. Under load the per-request cost of the
round trip is divided by the batch size.

The MGETs travel on one connection of their own (:class:`LookupConnection`), pipelined:
Redis answers in the order the commands arrive, so each reply belongs to the oldest
batch still waiting. The reply is parsed by hiredis, in C, as soon as the bytes arrive
(``data_received``), and the batch's futures are resolved right there: no Task, stream
or pooled connection per batch. That path (a Task per batch, redis-py's pool and
stream reader) cost several microseconds per request at ~20 lookups per batch, a tenth
of the framework's own cost per request (docs/benchmarks.md). The connection is made
with the settings of the service's redis-py client (URL, password, database, TLS,
timeouts), again after any failure.

At most ``max_in_flight`` batches are out at once; lookups arriving meanwhile wait for
the next free slot and then leave together, so batches grow with the load instead of
multiplying (one batch per event-loop tick made Redis and the edge pay per-command
costs for single-key MGETs when Redis slowed down for a moment: it shares the cores).
A batch carries at most ``max_lookups`` lookups so that one reply stays small. A batch
not answered within ``timeout`` fails, and the connection (whose later replies could
no longer be matched to their batches) is closed with every batch on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import RedisSSLContext, SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Reply = list[bytes | None]
_Waiter = tuple[Sequence[str], "asyncio.Future[Reply]"]
# Called with the reply of one command, or with the exception that replaces it.
_OnReply = Callable[[Any], None]


def pack_mget(keys: Sequence[str]) -> bytes:
    """``MGET key...`` in the Redis protocol (RESP2 array of bulk strings), packed in C."""
    # hiredis' stub types the command as a 1-tuple; it takes any length.
    packed: bytes = hiredis.pack_command(("MGET", *keys))  # type: ignore[arg-type]
    return packed


def _reply_error(message: str) -> Exception:
    """What an error reply becomes: the exception redis-py raises for it (LOADING is a
    BusyLoadingError, a ConnectionError: a restarting Redis counts as down)."""
    error: Exception = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    return error


class LookupConnection(asyncio.Protocol):
    """A Redis connection for pipelined commands whose replies are handed, in order, to
    the callback given with each command, from ``data_received``."""

    def __init__(self) -> None:
        # Error replies come out of the reader as exception objects (returned, not raised).
        self._reader = hiredis.Reader(replyError=_reply_error)
        self._callbacks: deque[_OnReply] = deque()
        self._transport: asyncio.Transport | None = None
        self.closing = False

    # ---- asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        callbacks = self._callbacks
        try:
            reply = reader.gets()
            while reply is not False:
                callbacks.popleft()(reply)
                reply = reader.gets()
        except hiredis.ProtocolError as exc:
            self.abort(RedisConnectionError(f"redis protocol error: {exc}"))
        except IndexError:  # a reply nobody asked for: the stream cannot be trusted
            self.abort(RedisConnectionError("redis sent an unexpected reply"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(RedisConnectionError(
            "redis closed the connection" if exc is None else f"redis connection lost: {exc!r}"))

    # ---- commands -------------------------------------------------------------------
    def send(self, packed: bytes, on_reply: _OnReply) -> None:
        """Sends one packed command; ``on_reply`` gets its reply (or an exception)."""
        if self.closing or self._transport is None:
            on_reply(RedisConnectionError("redis connection closed"))
            return
        self._callbacks.append(on_reply)
        self._transport.write(packed)

    def request(self, *command: str | bytes | int) -> asyncio.Future[Any]:
        """One command as a future (the connection's handshake; not the lookup path)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_reply(reply: Any) -> None:
            if future.done():
                return
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

        self.send(hiredis.pack_command(command), on_reply)  # type: ignore[arg-type]
        return future

    def abort(self, error: Exception) -> None:
        """Closes the connection; every command still waiting gets ``error``."""
        self._fail_all(error)
        if self._transport is not None:
            self._transport.abort()

    def _fail_all(self, error: Exception) -> None:
        self.closing = True
        callbacks, self._callbacks = self._callbacks, deque()
        for on_reply in callbacks:
            on_reply(error)


async def open_lookup_connection(client: aioredis.Redis) -> LookupConnection:
    """A :class:`LookupConnection` made with ``client``'s connection settings: its host
    and port (or Unix socket), TLS, then AUTH and SELECT as redis-py would send them."""
    pool = client.connection_pool
    kwargs: Mapping[str, Any] = pool.connection_kwargs
    loop = asyncio.get_running_loop()
    protocol = LookupConnection()
    if "path" in kwargs:
        await loop.create_unix_connection(lambda: protocol, kwargs["path"])
    else:
        ssl = None
        if issubclass(pool.connection_class, SSLConnection):
            ssl = RedisSSLContext(
                keyfile=kwargs.get("ssl_keyfile"), certfile=kwargs.get("ssl_certfile"),
                cert_reqs=kwargs.get("ssl_cert_reqs", "required"),
                ca_certs=kwargs.get("ssl_ca_certs"), ca_data=kwargs.get("ssl_ca_data"),
                check_hostname=kwargs.get("ssl_check_hostname", False),
                min_version=kwargs.get("ssl_min_version"), ciphers=kwargs.get("ssl_ciphers"),
            ).get()
        await loop.create_connection(lambda: protocol, kwargs.get("host", "localhost"),
                                     kwargs.get("port", 6379), ssl=ssl)
    try:
        password, username = kwargs.get("password"), kwargs.get("username")
        if password is not None:
            await (protocol.request("AUTH", username, password) if username
                   else protocol.request("AUTH", password))
        if kwargs.get("db"):
            await protocol.request("SELECT", kwargs["db"])
    except BaseException:
        protocol.abort(RedisConnectionError("redis handshake failed"))
        raise
    return protocol


class MGetBatcher:
    def __init__(self, connect: Callable[[], Awaitable[LookupConnection]], max_lookups: int,
                 max_in_flight: int, timeout: float) -> None:
        self._connect = connect
        self._max = max_lookups
        self._max_in_flight = max_in_flight
        self._timeout = timeout
        self._connection: LookupConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._waiters: list[_Waiter] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = 0
        self.batches = 0
        self.lookups = 0

    @classmethod
    def for_client(cls, client: aioredis.Redis, max_lookups: int, max_in_flight: int,
                   timeout: float) -> MGetBatcher:
        return cls(lambda: open_lookup_connection(client), max_lookups, max_in_flight, timeout)

    def mget(self, keys: Sequence[str]) -> asyncio.Future[Reply]:
        # The loop of the first lookup, kept: asyncio.get_running_loop() makes a getpid()
        # system call each time (CPython 3.11), once per lookup here. A batcher serves
        # one application, on one loop.
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._waiters.append((keys, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """Sends pending lookups while a slot is free; the rest wait for an answer."""
        self._scheduled = False
        connection = self._connection
        if connection is None or connection.closing:
            if self._waiters and self._connecting is None and self._max_in_flight:
                self._connecting = asyncio.ensure_future(self._reconnect())
            return
        while self._waiters and self._in_flight < self._max_in_flight:
            waiters = self._waiters[: self._max]
            del self._waiters[: self._max]
            self._send(connection, waiters)

    def _send(self, connection: LookupConnection, waiters: list[_Waiter]) -> None:
        self.batches += 1
        self.lookups += len(waiters)
        self._in_flight += 1
        keys: list[str] = []
        for wanted, _ in waiters:
            keys.extend(wanted)
        assert self._loop is not None  # a lookup (mget) came first
        timer = self._loop.call_later(self._timeout, self._timed_out, connection)

        def on_reply(reply: Any) -> None:
            timer.cancel()
            self._in_flight -= 1
            if isinstance(reply, list):
                start = 0
                for wanted, future in waiters:
                    end = start + len(wanted)
                    if not future.done():
                        future.set_result(reply[start:end])
                    start = end
            else:
                # An error reply (e.g. an ACL refusing MGET) counts as Redis failing, like
                # a lost connection: the breaker and the Postgres fallback take over.
                error = reply if isinstance(reply, RedisConnectionError | RedisTimeoutError) \
                    else RedisConnectionError(f"redis did not answer the MGET: {reply!r}")
                for _, future in waiters:
                    if not future.done():
                        future.set_exception(error)
            if self._waiters and not self._scheduled:
                self._flush()  # the next batch leaves now, not a tick later

        connection.send(pack_mget(keys), on_reply)

    def _timed_out(self, connection: LookupConnection) -> None:
        connection.abort(RedisTimeoutError(
            f"redis did not answer within {self._timeout * 1000:.0f} ms"))

    async def _reconnect(self) -> None:
        """Makes the connection (bounded by ``timeout``); fails what waits if it cannot."""
        try:
            async with asyncio.timeout(self._timeout):
                self._connection = await self._connect()
        except Exception as exc:
            waiters, self._waiters = self._waiters, []
            for _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._connecting = None
        self._flush()

    async def close(self) -> None:
        self._max_in_flight = 0  # nothing more is sent
        for _, future in self._waiters:
            future.cancel()
        self._waiters.clear()
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        if self._connection is not None:
            self._connection.abort(RedisConnectionError("the lookup batcher is closed"))
            self._connection = None
