"""Running a service: uvloop, a generous listen backlog, and SO_REUSEPORT so several
worker processes can share one port (throughput grows with cores)."""

from __future__ import annotations

import asyncio
import logging

import uvloop
from aiohttp import web

from shared.logging import configure_logging
from shared.settings import CommonSettings

# aiohttp's default backlog (128) drops connections at a few hundred concurrent clients.
LISTEN_BACKLOG = 2048


def run_service(app: web.Application, settings: CommonSettings, *, access_log: bool) -> None:
    configure_logging(settings.log_level)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        reuse_port=True,
        backlog=LISTEN_BACKLOG,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        print=None,
        handle_signals=True,
        shutdown_timeout=10,
    )
