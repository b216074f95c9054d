"""``GET /openapi.json`` (OpenAPI 3.1, generated from the registered Endpoints) and
``GET /docs`` (Swagger UI with try-it-out). Swagger UI's files come from the pinned
``swagger-ui-bundle-v2`` package and are served from this process: the page needs no
network (no CDN). Neither needs an API key.
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from shared.http import json_response
from shared.openapi import Endpoint, add_endpoints, openapi_document

TITLE: Final = "linkhop management API"
VERSION: Final = "1.0.0"
DESCRIPTION: Final = (
    "Short.io-compatible management API: existing Short.io clients work after changing"
    " only the base URL. Authenticate with `Authorization: <key>` (Short.io style) or"
    " `Authorization: Bearer <key>`. Errors answer `{success: false, error, code,"
    " statusCode}`. Every rate-limited answer carries `X-RateLimit-Limit`,"
    " `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds); 429 and 503 add"
    " `Retry-After`."
)
ASSETS_PREFIX: Final = "/docs/static"
# The document is built on first use (every Endpoint is registered by then) and kept.
_CACHE: Final = web.AppKey("openapi_cache", dict[str, dict[str, Any]])

_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/static/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      tryItOutEnabled: true,
      persistAuthorization: true,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    }});
  </script>
</body>
</html>
"""


def swagger_ui_dir() -> Path:
    """The bundled Swagger UI (``swagger_ui_bundle/vendor/swagger-ui-<version>``)."""
    vendor = Path(str(files("swagger_ui_bundle") / "vendor"))
    found = sorted(vendor.glob("swagger-ui-*"))
    if not found:
        raise RuntimeError(f"no Swagger UI under {vendor}")
    return found[-1]


def document(app: web.Application) -> dict[str, Any]:
    cache = app[_CACHE]
    if "doc" not in cache:
        cache["doc"] = openapi_document(
            app, title=TITLE, version=VERSION, description=DESCRIPTION
        )
    return cache["doc"]


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(document(request.app))


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE.format(title=html.escape(TITLE)), content_type="text/html")


ENDPOINTS = [
    Endpoint("GET", "/openapi.json", openapi_json, summary="This API's OpenAPI 3.1 document",
             tags=("meta",), auth=False, errors=(429,)),
    Endpoint("GET", "/docs", docs_page, summary="Interactive API documentation",
             tags=("meta",), auth=False, errors=(429,), response_content_type="text/html"),
]


def add_routes(app: web.Application) -> None:
    app[_CACHE] = {}
    add_endpoints(app, ENDPOINTS)
    app.router.add_static(ASSETS_PREFIX, swagger_ui_dir(), append_version=False)
