"""The redirect service with its click events dropped at the queue: for the benchmark's
CPU budget only, never a way to run linkhop.

The same application as ``python -m services.redirect`` (``create_app``, the same
settings from the same ``LINKHOP_REDIRECT_*`` variables, every cleanup context, the
same runner), except that ``ClickEmitter.emit`` discards each draft the handler made.
The handler's own work is unchanged (it still packs the draft and calls ``emit``), so
this server's CPU per request, against the real service's under the same load, is
the cost of producing the click events: encoding them, batching them per partition,
the Kafka client, and the acknowledgements.

Run as its own process: ``python -m bench.quiet_redirect``.
"""

from __future__ import annotations

from aiohttp import web

from services.redirect.app import create_app
from services.redirect.clicks import Draft
from services.redirect.keys import EDGE
from services.redirect.settings import Settings
from shared.runner import run_service


def _discard(draft: Draft) -> None:
    """Drops a click event (the real ``emit`` queues it for the Kafka sender)."""


async def _drop_click_events(app: web.Application) -> None:
    # An on_startup callback appended after create_app's: it runs after the cleanup
    # contexts have made the edge.
    app[EDGE].emitter.emit = _discard  # type: ignore[method-assign]


def main() -> None:
    settings = Settings()
    app = create_app(settings)
    app.on_startup.append(_drop_click_events)
    run_service(app, settings, access_log=False)


if __name__ == "__main__":
    main()
