"""An aiohttp app served on a loopback port from its own thread and event loop, for
clients that block (schemathesis uses requests)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web


@contextmanager
def served_in_thread(app: web.Application) -> Iterator[str]:
    """Yields the base URL while ``app`` runs; stops it (cleanup contexts too) after."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = runner.server
        assert server is not None
        sockets = [s for s in runner.addresses]
        state["runner"] = runner
        state["url"] = f"http://127.0.0.1:{sockets[0][1]}"

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            state["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="served-app", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in state:
        raise RuntimeError(f"the app did not start: {state['error']!r}")
    try:
        yield str(state["url"])
    finally:
        runner = state["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
