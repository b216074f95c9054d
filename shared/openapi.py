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
    message: str
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


    @property
    def template(self) -> str:
        """The path as OpenAPI writes it: ``/links/{linkId}`` (regex parts dropped)."""
        return template_path(self.path)

    @property
    def name(self) -> str:
        """``"POST /links/{linkId}"``: how rate limits and logs name the endpoint."""
        return f"{self.method.upper()} {self.template}"


ENDPOINTS: Final = web.AppKey("endpoints", list[Endpoint])
_ROUTES: Final = web.AppKey("endpoint_routes", dict[web.AbstractRoute, Endpoint])


def template_path(path: str) -> str:
    return "/".join(
        "{" + s[1:-1].split(":")[0] + "}" if s.startswith("{") else s for s in path.split("/")
    )


def add_endpoints(app: web.Application, endpoints: Sequence[Endpoint]) -> None:
    if ENDPOINTS not in app:
        app[ENDPOINTS] = []
        app[_ROUTES] = {}
    for endpoint in endpoints:
        route = app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)
        app[ENDPOINTS].append(endpoint)
        app[_ROUTES][route] = endpoint


def endpoint_for(request: web.Request) -> Endpoint | None:
    """The declared endpoint a request was routed to (None: not an Endpoint route)."""
    routes = request.app.get(_ROUTES)
    if routes is None:
        return None
    return routes.get(request.match_info.route)


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
    operation_ids: set[str] = set()
    for endpoint in app.get(ENDPOINTS, []):
        operation_id = endpoint.handler.__name__
        if operation_id in operation_ids:  # OpenAPI requires them unique
            operation_id = f"{operation_id}_{len(operation_ids)}"
        operation_ids.add(operation_id)
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": operation_id,
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
        paths.setdefault(endpoint.template, {})[endpoint.method.lower()] = operation
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
