"""Background work as aiohttp cleanup contexts: started with the app, cancelled cleanly
at shutdown (aiohttp's ``web_advanced`` guidance for background tasks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancels ``task`` and waits until it has finished unwinding."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def background_task_ctx(
    name: str, run: Callable[[web.Application], Coroutine[Any, Any, None]]
) -> CleanupCtx:
    """A cleanup context running ``run(app)`` as a task for the app's whole life."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(app), name=name)
        try:
            yield
        finally:
            await cancel_and_wait(task)

    return ctx
