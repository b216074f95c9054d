"""Background work as aiohttp cleanup contexts: started with the app, cancelled cleanly
at shutdown (aiohttp's ``web_advanced`` guidance for background tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from aiohttp import web

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]
T = TypeVar("T")


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancels ``task`` and waits until it has finished unwinding."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def finish_then_cancel(work: Coroutine[Any, Any, T]) -> T:
    """Runs ``work`` to its end even if the caller is cancelled meanwhile; the
    cancellation is raised once it has ended.

    For work that must not be cut in half: a batch of events already taken from memory
    and being written to disk is in neither place if the write's awaiting task is
    cancelled (at shutdown, say), and a write that goes on in its thread while nobody
    awaits it is not counted."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task})
        raise


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


def periodic_task_ctx(name: str, interval: timedelta,
                      step: Callable[[web.Application], Awaitable[bool]], log: logging.Logger,
                      quiet: tuple[type[BaseException], ...] = ()) -> CleanupCtx:
    """A cleanup context running ``step(app)`` every ``interval`` for the app's whole
    life: at once again when it returns True (more work is waiting). A failure never
    ends the task: it is logged (at debug level when it is one of ``quiet``, an outage
    expected to pass) and the next round retries."""

    async def run(app: web.Application) -> None:
        while True:
            again = False
            try:
                again = await step(app)
            except quiet as exc:
                log.debug("%s deferred: %r", name, exc)
            except Exception:
                log.warning("%s failed; retrying in %s", name, interval, exc_info=True)
            if not again:
                await asyncio.sleep(interval.total_seconds())

    return background_task_ctx(name, run)
