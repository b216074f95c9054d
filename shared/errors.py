"""One error base class, rendered by one middleware, in Short.io's error shape.

Short.io answers errors as ``{"success": false, "error": "<message>"}`` (see the
``*Errors`` types of ``@short.io/client-node``); linkhop adds ``message`` (which some
SDK error types read), ``code`` (a stable machine name) and ``statusCode``. Handlers
and services raise :class:`ApiError` subclasses; anything else that escapes becomes a
500 with no internals in the body, except the dependency outages that are mapped to
503 + ``Retry-After`` here, in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import asyncpg
import redis.exceptions
from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "success": False,
            "error": self.message,
            # The SDK's create/update error types read `message`; others read `error`.
            "message": self.message,
            "code": self.code,
            "statusCode": self.status,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(ApiError):
    status = 429
    code = "rate_limited"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"


def validation_error(exc: ValidationError) -> BadRequest:
    """A pydantic error as a 400 naming each bad field (input values are not echoed)."""
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = problems[0] if problems else {"field": "", "message": "invalid input"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return BadRequest(message, details=problems)


def json_error(error: ApiError) -> web.Response:
    return web.Response(
        status=error.status,
        text=json.dumps(error.body()),
        content_type="application/json",
        headers=error.headers,
    )


# Exceptions that mean "a dependency is away", not "linkhop is broken".
DB_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
)
REDIS_OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # BusyLoadingError (a restart loading) included
    redis.exceptions.TimeoutError,
)
# What a call to Redis raises when Redis (or the way to it) fails, socket errors and
# timeouts included: what callers that fall back (rate limiter, edge lookups) catch.
# Not used to render errors: a bare OSError may come from Postgres too.
REDIS_FAILURES: tuple[type[BaseException], ...] = (*REDIS_OUTAGES, OSError, TimeoutError)


def outage_error(exc: BaseException) -> ServiceUnavailable | None:
    if isinstance(exc, REDIS_OUTAGES):
        return ServiceUnavailable("cache unavailable, retry shortly", headers={"Retry-After": "2"})
    if isinstance(exc, DB_OUTAGES):
        return ServiceUnavailable(
            "database unavailable, retry shortly", headers={"Retry-After": "5"}
        )
    return None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc)
    except ValidationError as exc:
        return json_error(validation_error(exc))
    except asyncpg.exceptions.DataError as exc:
        # SQLSTATE class 22: Postgres refused a value the caller sent (a NUL in a path
        # parameter, a number out of range). Input validation should catch these first;
        # this keeps one that slips through a 400, never a 500.
        log.info("data refused by postgres on %s %s: %s", request.method, request.path,
                 type(exc).__name__)
        return json_error(BadRequest("invalid value in request"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own 404/405/413 answers get the same JSON body as ours.
        error = ApiError(exc.reason, headers={k: v for k, v in exc.headers.items()
                                              if _kept_header(k)})
        response = json_error(error)
        response.set_status(exc.status)
        body = error.body() | {"statusCode": exc.status, "code": _code_for(exc.status)}
        response.text = json.dumps(body)
        return response
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        outage = outage_error(exc)
        if outage is not None:
            log.warning("dependency outage on %s %s: %r", request.method, request.path, exc)
            return json_error(outage)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(_InternalError("internal error"))


def _kept_header(name: str) -> bool:
    name = name.lower()
    return name in ("allow", "retry-after") or name.startswith("x-ratelimit-")


class _InternalError(ApiError):
    status = 500
    code = "internal_error"


def _code_for(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
    }.get(status, "error")
