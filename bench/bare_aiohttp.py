"""The framework's ceiling: a bare aiohttp handler answering a fixed 302.

Run as its own process (``python -m bench.bare_aiohttp --port N``) through the same
runner as the linkhop services (uvloop, the same listen backlog, SO_REUSEPORT), so the
only difference measured against linkhop is linkhop's own work per request.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from shared.runner import run_service
from shared.settings import CommonSettings

_LOCATION = {"Location": "https://example.com/"}


async def fixed_redirect(request: web.Request) -> web.Response:
    return web.Response(status=302, headers=_LOCATION)


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/{path:.*}", fixed_redirect)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_aiohttp")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_service(create_app(), CommonSettings(port=args.port, log_level="WARNING"),
                access_log=False)


if __name__ == "__main__":
    main()
