"""shared.tasks.periodic_task_ctx: again at once while there is more, else after the
interval; a failure is logged and retried, never the end of the task."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import timedelta

import pytest
from aiohttp import web

from shared.tasks import periodic_task_ctx

log = logging.getLogger("test_periodic_task")


async def test_more_work_runs_at_once_and_failures_are_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    # Steps: two full rounds, a failure, an expected outage, then idle rounds.
    outcomes: list[bool | BaseException] = [True, True, RuntimeError("boom"),
                                            ConnectionError("away")]
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def step(app: web.Application) -> bool:
        calls.append(loop.time())
        outcome = outcomes.pop(0) if outcomes else False
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    ctx = periodic_task_ctx("test-task", timedelta(milliseconds=300), step, log,
                            quiet=(ConnectionError,))
    caplog.set_level(logging.DEBUG, logger=log.name)
    running = ctx(web.Application())
    await running.__anext__()
    while len(calls) < 6:  # bounded by the steps above: about 1.2 s
        await asyncio.sleep(0.01)
    with pytest.raises(StopAsyncIteration):
        await running.__anext__()  # the app's shutdown: the task is cancelled
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    # Wide margins: this checks whether the task waited, not how fast it runs.
    assert all(gap < 0.15 for gap in gaps[:2])  # more work: no wait
    assert all(gap >= 0.29 for gap in gaps[2:])  # after a failure or an idle round
    levels = {r.getMessage().split(" ")[1]: r.levelno for r in caplog.records}
    assert levels == {"failed;": logging.WARNING, "deferred:": logging.DEBUG}
