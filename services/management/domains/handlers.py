"""HTTP handlers for domains (Short.io paths), registered through shared.openapi."""

from __future__ import annotations

from aiohttp import web

from services.management.auth import principal
from services.management.domains import service
from services.management.domains.presenter import domain_detail_json, domain_json
from services.management.domains.schemas import (
    CreateDomainRequest,
    Domain,
    DomainDetail,
    DomainList,
    DomainSettingsRequest,
    ListDomainsQuery,
    SuccessResponse,
)
from shared.errors import NotFound
from shared.http import json_response, read_model, read_query
from shared.openapi import Endpoint, add_endpoints
from shared.resources import DB_POOL, REDIS

_MAX_ID = 2**63 - 1


def _domain_id(request: web.Request) -> int:
    raw = request.match_info["domainId"]
    if not raw.isdigit() or int(raw) > _MAX_ID:
        raise NotFound("Domain not found")
    return int(raw)


async def list_domains(request: web.Request) -> web.Response:
    who = await principal(request)
    rows = await service.list_domains(request.app[DB_POOL], who,
                                      read_query(request, ListDomainsQuery))
    return json_response([domain_json(row) for row in rows])


async def get_domain(request: web.Request) -> web.Response:
    who = await principal(request)
    row = await service.get_domain(request.app[DB_POOL], who, _domain_id(request))
    return json_response(domain_detail_json(row))


async def create_domain(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_model(request, CreateDomainRequest)
    row = await service.create_domain(request.app[DB_POOL], request.app[REDIS], who, body)
    return json_response(domain_json(row))


async def update_domain_settings(request: web.Request) -> web.Response:
    who = await principal(request)
    domain_id = _domain_id(request)
    body = await read_model(request, DomainSettingsRequest)
    await service.update_settings(request.app[DB_POOL], request.app[REDIS], who, domain_id, body)
    return json_response(SuccessResponse().model_dump())


ENDPOINTS = [
    Endpoint("GET", "/api/domains", list_domains, summary="List the key's domains",
             tags=("domains",), query=ListDomainsQuery, response=DomainList,
             errors=(400, 401, 403, 429, 503),
             description="All domains of the key's team; only its domain for a key"
                         " restricted to one domain."),
    Endpoint("GET", r"/domains/{domainId:\d+}", get_domain, summary="Get a domain",
             tags=("domains",), response=DomainDetail, errors=(401, 403, 404, 429, 503)),
    Endpoint("POST", "/domains", create_domain, summary="Add a domain", tags=("domains",),
             request=CreateDomainRequest, response=Domain,
             errors=(400, 401, 403, 409, 413, 429, 503),
             description="The hostname is stored lower-case in punycode (IDNA)."),
    Endpoint("POST", r"/domains/settings/{domainId:\d+}", update_domain_settings,
             summary="Change a domain's settings", tags=("domains",),
             request=DomainSettingsRequest, response=SuccessResponse,
             errors=(400, 401, 403, 404, 409, 413, 429, 503),
             description="Only the fields sent change. Turning caseSensitive off is refused"
                         " (409) while two paths of the domain differ only in case."),
]


def add_routes(app: web.Application) -> None:
    add_endpoints(app, ENDPOINTS)
