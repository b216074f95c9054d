"""Starting the redirect service: one worker, or ``workers`` processes sharing the port
(SO_REUSEPORT, set by ``shared.runner``), so throughput grows with cores.

With several workers this process supervises them: a worker that dies (an OOM kill, a
crash, a stray signal) is replaced, instead of the service going on with a core fewer
until someone restarts it. What a dead worker had written to the shared spool is
replayed by the others (``services/redirect/spool.py``: a file whose writer is gone is
replayable). A worker that dies soon after its start is replaced after a growing delay,
so a worker that cannot run does not take a core restarting in a loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import secrets
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from pydantic import SecretStr

from services.redirect.app import create_app
from services.redirect.settings import Settings
from shared.logging import configure_logging
from shared.runner import run_service

log = logging.getLogger(__name__)

# A worker that lived this long is replaced at once; one that died sooner after a delay
# that doubles from the minimum to the maximum with each early death in a row.
STABLE_AFTER_S = 30.0
RESTART_DELAY_MIN_S = 0.5
RESTART_DELAY_MAX_S = 30.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def run_worker(settings: Settings) -> None:
    run_service(create_app(settings), settings, access_log=False)


def run_supervised_worker(settings: Settings, supervisor_pid: int) -> None:
    """A worker of :class:`Supervisor`: it gets SIGTERM, and so shuts down cleanly (its
    queue sent or spooled), when the supervisor dies, even by SIGKILL; otherwise it
    would go on serving the port, unsupervised, with nobody left to stop it."""
    _terminate_with_parent()
    if os.getppid() != supervisor_pid:  # the supervisor died before the line above
        return
    run_worker(settings)


def _terminate_with_parent() -> None:
    """Linux's PR_SET_PDEATHSIG (prctl(2)); elsewhere nothing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def restart_delay(lived: float, previous_delay: float) -> float:
    """Seconds to wait before replacing a worker that died after ``lived`` seconds and
    had itself been started ``previous_delay`` seconds after its predecessor died."""
    if lived >= STABLE_AFTER_S:
        return 0.0
    return min(max(2 * previous_delay, RESTART_DELAY_MIN_S), RESTART_DELAY_MAX_S)


@dataclass
class _Worker:
    slot: int
    process: BaseProcess
    started: float
    delay: float  # how long after its predecessor's death it was started


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._due: list[tuple[float, int, float]] = []  # (when, slot, delay) to start
        self._stopping = False

    def _start(self, slot: int, delay: float) -> None:
        process = self._context.Process(target=run_supervised_worker,
                                        args=(self._settings, os.getpid()),
                                        name=f"redirect-{slot}")
        process.start()
        self._workers.append(_Worker(slot, process, time.monotonic(), delay))
        if self._stopping:  # the signal came while it was starting
            process.terminate()

    def stop(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: each worker shuts down cleanly (its queue sent or spooled);
        none is replaced any more."""
        self._stopping = True
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.terminate()

    def run(self) -> None:
        """Until stopped and every worker has exited: waits for a worker to exit or a
        replacement to be due."""
        for slot in range(self._settings.workers):
            self._start(slot, 0.0)
        while self._workers or (self._due and not self._stopping):
            due = None if self._stopping or not self._due else min(w for w, _, _ in self._due)
            timeout = None if due is None else max(0.0, due - time.monotonic())
            ready = set(wait([w.process.sentinel for w in self._workers], timeout))
            now = time.monotonic()
            for worker in [w for w in self._workers if w.process.sentinel in ready]:
                self._workers.remove(worker)
                worker.process.join()
                if not self._stopping:
                    self._schedule_replacement(worker, now)
            if not self._stopping:
                for entry in [d for d in self._due if d[0] <= now]:
                    self._due.remove(entry)
                    self._start(entry[1], entry[2])

    def _schedule_replacement(self, worker: _Worker, now: float) -> None:
        lived = now - worker.started
        delay = restart_delay(lived, worker.delay)
        log.warning("redirect worker %s (pid %s) exited with %s after %.1f s; replacing it "
                    "in %.1f s", worker.slot, worker.process.pid, worker.process.exitcode,
                    lived, delay)
        self._due.append((now + delay, worker.slot, delay))


def main() -> None:
    settings = Settings()
    if settings.workers <= 1:
        run_worker(settings)
        return
    configure_logging(settings.log_level)
    if settings.secret is None:
        # Workers must share one secret: an unlock cookie set by one is checked by another.
        settings = settings.model_copy(update={"secret": SecretStr(secrets.token_hex(32))})
    supervisor = Supervisor(settings)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    supervisor.run()
