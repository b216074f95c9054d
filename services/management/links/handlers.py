"""HTTP handlers for links: parse, authorise, call the service, present."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.management.auth import principal
from services.management.keys import SETTINGS
from services.management.links import creation, folders, listing, service
from services.management.links.bulk_handlers import ENDPOINTS as BULK_ENDPOINTS
from services.management.links.creation import Outcome
from services.management.links.presenter import folder_json, link_json
from services.management.links.schemas import (
    ByUrlQuery,
    CreateFolderRequest,
    CreateLinkRequest,
    DuplicateRequest,
    ExpandQuery,
    LinkIdRequest,
    LinkResponse,
    ListLinksQuery,
    UpdateLinkRequest,
)
from services.management.links.validation import validate_destination
from shared.errors import BadRequest
from shared.http import json_response, read_model, read_query
from shared.openapi import Endpoint, add_endpoints
from shared.resources import DB_POOL, REDIS

_TAGS = ("links",)
_WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 429, 503)


def scheme(request: web.Request) -> str:
    return request.app[SETTINGS].short_url_scheme


def outcome_json(request: web.Request, outcome: Outcome) -> dict[str, Any]:
    if outcome.error is not None:
        return outcome.error.body()
    assert outcome.row is not None
    body = link_json(outcome.row, scheme(request))
    if outcome.duplicate:
        body["duplicate"] = True
    return body


async def _create(request: web.Request, *, public: bool) -> web.Response:
    who = await principal(request, allow_public=public)
    body = await read_model(request, CreateLinkRequest)
    [outcome] = await creation.create_links(
        request.app[DB_POOL], request.app[REDIS], who, body.domain, [body],
        source="public" if public else "api")
    if outcome.error is not None:
        raise outcome.error
    return json_response(outcome_json(request, outcome))


async def create_link(request: web.Request) -> web.Response:
    return await _create(request, public=False)


async def create_link_public(request: web.Request) -> web.Response:
    return await _create(request, public=True)


async def get_link(request: web.Request) -> web.Response:
    who = await principal(request)
    row = await service.get_link(request.app[DB_POOL], who, request.match_info["linkId"])
    return json_response(link_json(row, scheme(request)))


async def update_link(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_model(request, UpdateLinkRequest)
    row = await service.update_link(request.app[DB_POOL], request.app[REDIS], who,
                                    request.match_info["linkId"], body)
    return json_response(link_json(row, scheme(request)))


async def delete_link(request: web.Request) -> web.Response:
    who = await principal(request)
    id_string = request.match_info["linkId"]
    await service.delete_links(request.app[DB_POOL], request.app[REDIS], who, [id_string])
    return json_response({"success": True, "idString": id_string})


async def expand_link(request: web.Request) -> web.Response:
    who = await principal(request)
    query = read_query(request, ExpandQuery)
    row = await service.expand(request.app[DB_POOL], who, query.domain, query.path)
    return json_response(link_json(row, scheme(request)))


async def links_by_url(request: web.Request) -> web.Response:
    who = await principal(request)
    query = read_query(request, ByUrlQuery)
    try:
        url = validate_destination(query.originalURL)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if query.domain_id is not None:
        rows = await service.by_url(request.app[DB_POOL], who, query.domain_id, url, by_id=True)
    elif query.domain is not None:
        rows = await service.by_url(request.app[DB_POOL], who, query.domain, url, by_id=False)
    else:
        raise BadRequest("domain_id or domain is required")
    return json_response({"links": [link_json(r, scheme(request)) for r in rows]})


async def list_links(request: web.Request) -> web.Response:
    who = await principal(request)
    query = read_query(request, ListLinksQuery)
    page = await listing.list_page(request.app[DB_POOL], who, query)
    body: dict[str, Any] = {"links": [link_json(r, scheme(request)) for r in page.rows],
                            "count": page.count}
    if page.next_token is not None:
        body["nextPageToken"] = page.next_token
    return json_response(body)


async def duplicate_link(request: web.Request) -> web.Response:
    who = await principal(request)
    body = (await read_model(request, DuplicateRequest) if request.can_read_body
            else DuplicateRequest())
    row = await service.duplicate_link(request.app[DB_POOL], request.app[REDIS], who,
                                       request.match_info["linkId"], body.path)
    answer = link_json(row, scheme(request))
    answer["duplicatedFrom"] = request.match_info["linkId"]
    return json_response(answer)


async def _set_archived(request: web.Request, archived: bool) -> web.Response:
    who = await principal(request)
    body = await read_model(request, LinkIdRequest)
    await service.change_links(request.app[DB_POOL], request.app[REDIS], who, [body.link_id],
                               archived=archived)
    return json_response({"success": True})


async def archive_link(request: web.Request) -> web.Response:
    return await _set_archived(request, True)


async def unarchive_link(request: web.Request) -> web.Response:
    return await _set_archived(request, False)


async def list_folders(request: web.Request) -> web.Response:
    who = await principal(request)
    rows = await folders.list_all(request.app[DB_POOL], who, request.match_info["domainId"])
    return json_response({"linkFolders": [folder_json(r) for r in rows]})


async def get_folder(request: web.Request) -> web.Response:
    who = await principal(request)
    row = await folders.get(request.app[DB_POOL], who, request.match_info["domainId"],
                            request.match_info["folderId"])
    return json_response(folder_json(row))


async def create_folder(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_model(request, CreateFolderRequest)
    row = await folders.create(request.app[DB_POOL], who, body.domainId, body.name)
    return json_response(folder_json(row))


# Fixed paths are listed before the /links/{linkId} patterns they would also match.
ENDPOINTS = [
    Endpoint("POST", "/links", create_link, summary="Create a link", tags=_TAGS,
             request=CreateLinkRequest, response=LinkResponse, errors=_WRITE_ERRORS),
    Endpoint("POST", "/links/public", create_link_public,
             summary="Create a link with a public key", tags=_TAGS,
             request=CreateLinkRequest, response=LinkResponse, errors=_WRITE_ERRORS),
    Endpoint("GET", "/links/expand", expand_link, summary="Find a link by domain and path",
             tags=_TAGS, query=ExpandQuery, response=LinkResponse),
    Endpoint("GET", "/links/multiple-by-url", links_by_url,
             summary="Links of a domain with this destination", tags=_TAGS, query=ByUrlQuery),
    Endpoint("GET", "/api/links", list_links, summary="List a domain's links (cursor paged)",
             tags=_TAGS, query=ListLinksQuery),
    Endpoint("POST", "/links/archive", archive_link, summary="Archive a link", tags=_TAGS,
             request=LinkIdRequest),
    Endpoint("POST", "/links/unarchive", unarchive_link, summary="Unarchive a link",
             tags=_TAGS, request=LinkIdRequest),
    Endpoint("GET", "/links/folders/{domainId}", list_folders,
             summary="Folders of a domain", tags=("folders",)),
    Endpoint("GET", "/links/folders/{domainId}/{folderId}", get_folder,
             summary="One folder", tags=("folders",)),
    Endpoint("POST", "/links/folders", create_folder, summary="Create a folder",
             tags=("folders",), request=CreateFolderRequest),
    *BULK_ENDPOINTS,
    Endpoint("POST", "/links/duplicate/{linkId}", duplicate_link, summary="Copy a link",
             tags=_TAGS, request=DuplicateRequest, response=LinkResponse,
             errors=_WRITE_ERRORS),
    Endpoint("GET", "/links/{linkId}", get_link, summary="Link info", tags=_TAGS,
             response=LinkResponse),
    Endpoint("POST", "/links/{linkId}", update_link, summary="Update a link", tags=_TAGS,
             request=UpdateLinkRequest, response=LinkResponse, errors=_WRITE_ERRORS),
    # Short.io's SDK names this parameter link_id; one name keeps the OpenAPI paths valid.
    Endpoint("DELETE", "/links/{linkId}", delete_link, summary="Delete a link", tags=_TAGS),
]


def add_routes(app: web.Application) -> None:
    add_endpoints(app, ENDPOINTS)
