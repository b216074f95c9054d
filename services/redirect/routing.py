"""The visitors' catch-all route, without a regular expression.

``router.add_get("/{path:.*}", ...)`` makes a ``DynamicResource``: for every request it
runs its pattern, builds a dict of the groups and percent-decodes the captured path
(~0.75 us here, about a quarter of what the cache-hit path may add to a bare aiohttp
handler in total). The redirect handlers never read ``match_info``: they take the link
path from ``request.raw_path`` (:func:`services.redirect.resolve.path_of`). So the
catch-all is this resource, which matches every path with an empty match dict and is
otherwise an ordinary aiohttp resource: registered on the application's router under
the canonical path ``/{path}`` (indexed under ``/``, so the plain routes registered
before it, ``/health``, ``/metrics`` and ``/robots.txt``, still win), with the usual
method routes (GET and HEAD for visits, POST for the password form; any other method
is a 405 with an ``Allow`` header, as before).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import _InfoDict
from yarl import URL

CANONICAL = "/{path}"


class CatchAllResource(web.Resource):
    def __init__(self) -> None:
        super().__init__(name=None)

    @property
    def canonical(self) -> str:
        return CANONICAL

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("the redirect application is not meant to be a sub-application")

    def _match(self, path: str) -> dict[str, str]:
        return {}

    def raw_match(self, path: str) -> bool:
        return path == CANONICAL

    def get_info(self) -> _InfoDict:
        return {"formatter": CANONICAL}

    def url_for(self, **parts: Any) -> URL:
        return URL.build(path="/" + str(parts.get("path", "")).lstrip("/"))

    def __repr__(self) -> str:
        return f"<CatchAllResource {CANONICAL}>"


def add_catch_all(router: web.UrlDispatcher, *, get: Handler, post: Handler
                  ) -> CatchAllResource:
    """Registers the catch-all, after every other route: it takes any path they do not."""
    resource = CatchAllResource()
    router.register_resource(resource)
    resource.add_route("HEAD", get)
    resource.add_route("GET", get)
    resource.add_route("POST", post)
    return resource
