"""Small helpers for tests (not fixtures)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
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


def spawned_workers(parent: int) -> set[int]:
    """The running processes that ``parent`` started with multiprocessing's spawn (the
    redirect launcher's workers): not its resource tracker, nor a zombie not yet
    reaped."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        state, parent_pid = stat[stat.rfind(")") + 2:].split()[:2]
        if int(parent_pid) == parent and state != "Z" and b"spawn_main" in command:
            found.add(int(entry))
    return found


async def run_command(*cmd: str, cwd: Path | None = None, timeout: float = 60.0
                      ) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``cmd``, killed (and the test failed by the
    TimeoutError) if it runs longer than ``timeout``."""
    process = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
