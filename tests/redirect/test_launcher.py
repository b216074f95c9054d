"""The multi-worker launcher replaces a worker that dies, and stops them all on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.local import processes
from services.redirect.launcher import (
    RESTART_DELAY_MAX_S,
    RESTART_DELAY_MIN_S,
    STABLE_AFTER_S,
    restart_delay,
)
from tests.conftest import StackEnv
from tests.helpers import spawned_workers
from tests.redirect.helpers import SERVICE_START_TIMEOUT_S, redirect_process


def test_restart_delay_grows_for_early_deaths_and_resets_after_a_stable_life() -> None:
    delays = [0.0]
    for _ in range(10):
        delays.append(restart_delay(1.0, delays[-1]))
    assert delays[1] == RESTART_DELAY_MIN_S
    assert delays[1:4] == [RESTART_DELAY_MIN_S, 2 * RESTART_DELAY_MIN_S, 4 * RESTART_DELAY_MIN_S]
    assert delays[-1] == RESTART_DELAY_MAX_S
    assert restart_delay(STABLE_AFTER_S, RESTART_DELAY_MAX_S) == 0.0


def _wait_for(check: Callable[[], bool], what: str,
              timeout: float = SERVICE_START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def launcher(migrated: StackEnv, tmp_path: Path
             ) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``python -m services.redirect`` with two workers; its log in a file (a pipe nobody
    reads while it runs would fill up and block the workers' logging)."""
    log = tmp_path / "launcher.log"
    env = {"LINKHOP_REDIRECT_WORKERS": "2", "LINKHOP_REDIRECT_SPOOL_DIR": str(tmp_path / "spool")}
    with log.open("wb") as output, redirect_process(migrated, env, output=output) as (process,
                                                                                       url):
        yield process, url, log


@pytest.mark.stack
def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(
    launcher: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    process, url, log_file = launcher
    _wait_for(lambda: len(spawned_workers(process.pid)) == 2, "two workers")
    workers = spawned_workers(process.pid)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)  # as the kernel's OOM killer would
    _wait_for(lambda: len(spawned_workers(process.pid) - {victim}) == 2, "a replacement worker")
    replacement = (spawned_workers(process.pid) - workers).pop()
    processes.wait_healthy(url, timeout=SERVICE_START_TIMEOUT_S, process=process)

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=SERVICE_START_TIMEOUT_S) == 0
    assert not any(processes.pid_alive(pid) for pid in (workers | {replacement}) - {victim})
    log = log_file.read_text()
    assert f"pid {victim}) exited with -9" in log, log[-2000:]


@pytest.mark.stack
def test_workers_stop_when_the_launcher_is_killed(
    launcher: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    """A SIGKILL of the launcher (no chance to stop its workers) stops them anyway: they
    get SIGTERM from the kernel (PR_SET_PDEATHSIG) and shut down cleanly, instead of
    serving the port unsupervised."""
    process, _, log_file = launcher
    _wait_for(lambda: len(spawned_workers(process.pid)) == 2, "two workers")
    workers = spawned_workers(process.pid)
    process.kill()
    process.wait()
    try:
        _wait_for(lambda: not any(processes.pid_alive(pid) for pid in workers),
                  "the workers to stop")
    finally:  # none left behind if they did not stop
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert "Traceback" not in log_file.read_text()
