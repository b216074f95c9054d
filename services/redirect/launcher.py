"""Starting the redirect service: one worker, or ``workers`` processes sharing the port
(SO_REUSEPORT, set by ``shared.runner``), so throughput grows with cores."""

from __future__ import annotations

import multiprocessing
import secrets
import signal
from types import FrameType

from pydantic import SecretStr

from services.redirect.app import create_app
from services.redirect.settings import Settings
from shared.runner import run_service


def run_worker(settings: Settings) -> None:
    run_service(create_app(settings), settings, access_log=False)


def main() -> None:
    settings = Settings()
    if settings.workers <= 1:
        run_worker(settings)
        return
    if settings.secret is None:
        # Workers must share one secret: an unlock cookie set by one is checked by another.
        settings = settings.model_copy(update={"secret": SecretStr(secrets.token_hex(32))})
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=run_worker, args=(settings,), name=f"redirect-{i}")
               for i in range(settings.workers)]
    for worker in workers:
        worker.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: each worker shuts down cleanly (flush/spool)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.join()


