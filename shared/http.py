"""Small HTTP helpers every service uses: JSON answers and bounded, validated bodies."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from shared.errors import BadRequest, PayloadTooLarge, validation_error

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_JSON_BODY = 1024 * 1024  # bulk create of 1000 links fits well inside


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def read_json(request: web.Request, limit: int = MAX_JSON_BODY) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    if not raw:
        raise BadRequest("request body must be a JSON document")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    refuse_nul(data)
    return data


def refuse_nul(data: Any, where: str = "request body") -> None:
    """Postgres text cannot hold NUL: refuse it at the boundary with a clear 400 rather
    than let it fail deep inside a query."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise BadRequest(f"{where} must not contain NUL characters")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def read_query(request: web.Request, model: type[ModelT]) -> ModelT:
    """The query string (and path parameters are checked alike) as ``model``.

    A parameter the endpoint does not know is refused, not ignored: a misspelt filter
    (``limt=10``) or one linkhop does not support would otherwise silently answer
    something else than the caller asked for. The answer names the accepted ones.
    """
    data = dict(request.query)
    refuse_nul(data, "query string")
    refuse_nul(dict(request.match_info), "path")
    unknown = sorted(set(data) - set(model.model_fields))
    if unknown:
        accepted = ", ".join(model.model_fields)
        raise BadRequest(f"unknown query parameter(s): {', '.join(map(repr, unknown))}; "
                         f"this endpoint accepts: {accepted}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def read_model(request: web.Request, model: type[ModelT]) -> ModelT:
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
