"""Endpoints declared once: the same declaration registers the aiohttp route and
describes it in the OpenAPI 3.1 document, from the pydantic models the handler uses.

    add_endpoints(app, [
        Endpoint("POST", "/links", create_link, summary="Create a link", tags=("links",),
                 request=CreateLinkRequest, response=LinkResponse, errors=(400, 401, 404, 409)),
    ])

``openapi_document(app, ...)`` then lists every endpoint added to ``app``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_TEXT = {
    400: "Invalid input",
    401: "Missing, invalid, revoked or expired API key",
    403: "The key may not do this (public keys may only create links)",
    404: "Not found (or not visible to this key)",
    409: "Conflict (for example, the path is taken)",
    413: "Request body too large",
    429: "Rate limit exceeded; see Retry-After",
    503: "A dependency is unavailable; see Retry-After",
}
DEFAULT_ERRORS: Final = (400, 401, 403, 404, 429, 503)


class ErrorBody(BaseModel):
    """Short.io's error shape, plus a stable ``code`` and the ``statusCode``."""

    model_config = ConfigDict(extra="allow")

    success: bool = False
    error: str
    code: str
    statusCode: int


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tags: tuple[str, ...] = ()
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    response_content_type: str = "application/json"
    errors: tuple[int, ...] = DEFAULT_ERRORS
    auth: bool = True
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


ENDPOINTS: Final = web.AppKey("endpoints", list[Endpoint])


def add_endpoints(app: web.Application, endpoints: Sequence[Endpoint]) -> None:
    if ENDPOINTS not in app:
        app[ENDPOINTS] = []
    for endpoint in endpoints:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)
        app[ENDPOINTS].append(endpoint)


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _parameters(endpoint: Endpoint, components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for segment in endpoint.path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1].split(":")[0]
            params.append({"name": name, "in": "path", "required": True,
                           "schema": {"type": "string"}})
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required,
                           "schema": prop})
    return params


def openapi_document(
    app: web.Application, *, title: str, version: str, description: str = ""
) -> dict[str, Any]:
    components: dict[str, Any] = {}
    error_ref = _schema(ErrorBody, components)
    paths: dict[str, Any] = {}
    for endpoint in app.get(ENDPOINTS, []):
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": endpoint.handler.__name__,
            "tags": list(endpoint.tags),
            "parameters": _parameters(endpoint, components),
            "responses": {},
        }
        if endpoint.description:
            operation["description"] = endpoint.description
        if endpoint.auth:
            operation["security"] = [{"apiKey": []}]
        if endpoint.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(endpoint.request,
                                                                    components)}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if endpoint.response is not None:
            ok["content"] = {endpoint.response_content_type: {
                "schema": _schema(endpoint.response, components)}}
        elif endpoint.response_content_type != "application/json":
            ok["content"] = {endpoint.response_content_type: {
                "schema": {"type": "string", "format": "binary"}}}
        operation["responses"]["200"] = ok
        for status in endpoint.errors:
            operation["responses"][str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": error_ref}},
            }
        operation.update(endpoint.extra)
        path = "/".join(
            "{" + s[1:-1].split(":")[0] + "}" if s.startswith("{") else s
            for s in endpoint.path.split("/")
        )
        paths.setdefault(path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization",
                           "description": "The raw key (Short.io style) or `Bearer <key>`."},
            },
        },
    }
