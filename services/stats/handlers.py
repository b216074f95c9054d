"""Statistics API handlers (Short.io's statistics endpoints as the model): HTTP in and
out only; the answers are built in :mod:`services.stats.service`."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from services.stats import service
from services.stats.keys import SETTINGS
from services.stats.models import (
    DomainStatistics,
    FilteredStatsQuery,
    LastClicksQuery,
    LinkClicksQuery,
    LinkStatistics,
    StatsQuery,
    Success,
    TopByInterval,
    TopQuery,
)
from shared.apikeys import Principal
from shared.auth import authenticate
from shared.errors import BadRequest, Forbidden, validation_error
from shared.http import json_response, read_json, refuse_nul
from shared.openapi import Endpoint, add_endpoints, openapi_document
from shared.resources import DB_POOL

ModelT = TypeVar("ModelT", bound=BaseModel)


async def _principal(request: web.Request) -> Principal:
    who = await authenticate(request.app[DB_POOL], request.headers.get("Authorization"))
    if who.kind == "public":
        raise Forbidden("public API keys may only create links")
    return who


async def _input(request: web.Request, model: type[ModelT]) -> ModelT:
    """The query string, overlaid by the JSON body on POST (an empty body is allowed)."""
    data: dict[str, Any] = dict(request.query)
    refuse_nul(data, "query string")
    if request.method == "POST" and (request.content_length or request.body_exists):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        data |= body
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _limits(request: web.Request) -> service.Limits:
    settings = request.app[SETTINGS]
    return service.Limits(top=settings.top_limit, chart_points=settings.max_chart_points)


async def link_statistics(request: web.Request) -> web.Response:
    who = await _principal(request)
    model = FilteredStatsQuery if request.method == "POST" else StatsQuery
    query = await _input(request, model)
    return json_response(await service.link_statistics(
        request.app[DB_POOL], who, request.match_info["linkId"], query, _limits(request)))


async def domain_statistics(request: web.Request) -> web.Response:
    who = await _principal(request)
    model = FilteredStatsQuery if request.method == "POST" else StatsQuery
    query = await _input(request, model)
    return json_response(await service.domain_statistics(
        request.app[DB_POOL], who, request.match_info["domainId"], query, _limits(request)))


async def link_clicks(request: web.Request) -> web.Response:
    who = await _principal(request)
    query = await _input(request, LinkClicksQuery)
    return json_response(await service.link_clicks(
        request.app[DB_POOL], who, request.match_info["domainId"], query))


async def top(request: web.Request) -> web.Response:
    who = await _principal(request)
    query = await _input(request, TopQuery)
    return json_response(await service.top(
        request.app[DB_POOL], who, request.match_info["domainId"], query))


async def top_by_interval(request: web.Request) -> web.Response:
    who = await _principal(request)
    query = await _input(request, TopQuery)
    return json_response(await service.top_by_interval(
        request.app[DB_POOL], who, request.match_info["domainId"], query, _limits(request)))


async def last_clicks(request: web.Request) -> web.Response:
    who = await _principal(request)
    query = await _input(request, LastClicksQuery)
    return json_response(await service.last_clicks(
        request.app[DB_POOL], who, request.match_info["domainId"], query))


async def clear_domain_statistics(request: web.Request) -> web.Response:
    who = await _principal(request)
    await service.clear_domain(request.app[DB_POOL], who, request.match_info["domainId"])
    return json_response({"success": True})


async def clear_link_statistics(request: web.Request) -> web.Response:
    who = await _principal(request)
    await service.clear_link(request.app[DB_POOL], who, request.match_info["linkId"])
    return json_response({"success": True})


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(
        request.app, title="linkhop statistics API", version="1",
        description="Click statistics from rollups, Short.io-compatible."))


_TAGS = ("statistics",)
_PERIOD_DOC = ("period: today, yesterday, total, week, month, lastmonth, last7, last30 or "
               "custom (startDate, endDate); tz or tzOffset (minutes east of UTC) set the "
               "caller's zone; clicksChartInterval: hour, day, week or month.")

ENDPOINTS = [
    Endpoint("GET", "/statistics/link/{linkId}", link_statistics, "Link statistics",
             tags=_TAGS, query=StatsQuery, response=LinkStatistics, description=_PERIOD_DOC),
    Endpoint("POST", "/statistics/link/{linkId}", link_statistics,
             "Link statistics with include/exclude filters", tags=_TAGS,
             request=FilteredStatsQuery, response=LinkStatistics, description=_PERIOD_DOC),
    Endpoint("DELETE", "/statistics/link/{linkId}", clear_link_statistics,
             "Clear one link's statistics", tags=_TAGS, response=Success),
    Endpoint("GET", "/statistics/domain/{domainId}", domain_statistics, "Domain statistics",
             tags=_TAGS, query=StatsQuery, response=DomainStatistics, description=_PERIOD_DOC),
    Endpoint("POST", "/statistics/domain/{domainId}", domain_statistics,
             "Domain statistics with include/exclude filters", tags=_TAGS,
             request=FilteredStatsQuery, response=DomainStatistics, description=_PERIOD_DOC),
    Endpoint("GET", "/statistics/domain/{domainId}/link_clicks", link_clicks,
             "Clicks of a list of links ({idString: clicks})", tags=_TAGS,
             query=LinkClicksQuery),
    Endpoint("POST", "/statistics/domain/{domainId}/link_clicks", link_clicks,
             "Clicks of a list of links ({idString: clicks})", tags=_TAGS,
             request=LinkClicksQuery),
    Endpoint("POST", "/statistics/domain/{domainId}/top", top,
             "Most clicked values of a column (path: the most popular links)", tags=_TAGS,
             request=TopQuery),
    Endpoint("POST", "/statistics/domain/{domainId}/top_by_interval", top_by_interval,
             "The top values of a column, each with its chart", tags=_TAGS, request=TopQuery,
             response=TopByInterval),
    Endpoint("POST", "/statistics/domain/{domainId}/last_clicks", last_clicks,
             "The newest clicks of a domain (raw log, kept for the configured retention)",
             tags=_TAGS, request=LastClicksQuery),
    Endpoint("DELETE", "/statistics/domain/{domainId}/statistics", clear_domain_statistics,
             "Clear a domain's statistics", tags=_TAGS, response=Success),
    Endpoint("GET", "/openapi.json", openapi, "This document", tags=("meta",), auth=False,
             errors=()),
]


def add_routes(app: web.Application) -> None:
    add_endpoints(app, ENDPOINTS)
