"""Timed HTTP calls from the benchmark process (a separate process from the servers).

Used for the management and statistics figures, where the interesting number is one
call's latency at a modest rate rather than a saturating load (wrk does those).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

MAX_429_RETRIES = 3


@dataclass
class Timed:
    """Latencies in ms of the calls that succeeded, and what failed (status or error)."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    ms: float


async def call(session: aiohttp.ClientSession, method: str, url: str, *, key: str | None = None,
               json: Any = None, params: dict[str, str] | None = None) -> Answer:
    """One request; 429 answers are waited out (``Retry-After``) and retried, untimed."""
    headers = {"Authorization": key} if key else {}
    for _ in range(MAX_429_RETRIES + 1):
        started = time.perf_counter()
        async with session.request(method, url, json=json, params=params,
                                   headers=headers) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = await resp.text()
            ms = (time.perf_counter() - started) * 1000
            if resp.status != 429:
                return Answer(resp.status, body, ms)
            retry_after = float(resp.headers.get("Retry-After", "1") or 1)
        await asyncio.sleep(min(retry_after, 10.0))
    return Answer(429, None, 0.0)


async def steady_rate(make_call: Callable[[int], Awaitable[Answer]], *, count: int,
                      per_second: float) -> Timed:
    """``count`` calls started at a fixed rate (open loop: a slow answer does not delay the
    next start), each timed from its own start."""
    timed = Timed()

    async def one(i: int) -> None:
        try:
            answer = await make_call(i)
        except (aiohttp.ClientError, TimeoutError) as exc:
            timed.fail(type(exc).__name__)
            return
        if 200 <= answer.status < 300:
            timed.latencies_ms.append(answer.ms)
        else:
            timed.fail(f"HTTP {answer.status}")

    started = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = started + i / per_second - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return timed


async def sequential(make_call: Callable[[int], Awaitable[Answer]], *, count: int,
                     max_seconds: float = 60.0) -> Timed:
    """Up to ``count`` calls one after the other (the latency of an idle server), for at
    most ``max_seconds``."""
    timed = Timed()
    deadline = time.perf_counter() + max_seconds
    for i in range(count):
        if time.perf_counter() > deadline:
            break
        try:
            answer = await make_call(i)
        except (aiohttp.ClientError, TimeoutError) as exc:
            timed.fail(type(exc).__name__)
            continue
        if 200 <= answer.status < 300:
            timed.latencies_ms.append(answer.ms)
        else:
            timed.fail(f"HTTP {answer.status}")
    return timed
