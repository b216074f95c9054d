"""Small helpers for tests (not fixtures)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    interval: float = 0.1,
) -> T:
    """Polls ``probe`` until ``done`` holds; returns the last value (bounded in time)."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not done(value) and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = await probe()
    return value
