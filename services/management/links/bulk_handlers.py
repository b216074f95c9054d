"""Bulk link endpoints: create up to 1000, delete, archive, unarchive, tag."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from services.management.auth import principal
from services.management.keys import SETTINGS
from services.management.links import creation, service
from services.management.links.creation import Outcome
from services.management.links.presenter import link_json
from services.management.links.schemas import (
    MAX_BULK_LINKS,
    BulkCreateRequest,
    LinkIdsRequest,
    LinkItem,
    TagsBulkRequest,
)
from shared.errors import ApiError, BadRequest, PayloadTooLarge, validation_error
from shared.http import json_response, read_json, read_model
from shared.openapi import Endpoint
from shared.resources import DB_POOL, REDIS

_TAGS = ("links",)


def parse_item(raw: Any) -> LinkItem | ApiError:
    if not isinstance(raw, dict):
        return BadRequest("each link must be a JSON object")
    try:
        return LinkItem.model_validate(raw)
    except ValidationError as exc:
        return validation_error(exc)


def _result(outcome: Outcome, scheme: str) -> dict[str, Any]:
    if outcome.error is not None:
        return outcome.error.body()
    assert outcome.row is not None
    body = link_json(outcome.row, scheme)
    body["success"] = True
    if outcome.duplicate:
        body["duplicate"] = True
    return body


async def create_links_bulk(request: web.Request) -> web.Response:
    who = await principal(request)
    data = await read_json(request)
    if isinstance(data, dict) and isinstance(data.get("links"), list) and len(
            data["links"]) > MAX_BULK_LINKS:
        raise PayloadTooLarge(f"at most {MAX_BULK_LINKS} links per bulk request")
    body = BulkCreateRequest.model_validate(data)
    items = [parse_item(raw) for raw in body.links]
    outcomes = await creation.create_links(
        request.app[DB_POOL], request.app[REDIS], who, body.domain, items,
        allow_duplicates=body.allowDuplicates, folder_id=body.folderId)
    scheme = request.app[SETTINGS].short_url_scheme
    return json_response([_result(o, scheme) for o in outcomes])


async def delete_links_bulk(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_model(request, LinkIdsRequest)
    await service.delete_links(request.app[DB_POOL], request.app[REDIS], who, body.link_ids)
    return json_response({"success": True})


async def _archive_bulk(request: web.Request, archived: bool) -> web.Response:
    who = await principal(request)
    body = await read_model(request, LinkIdsRequest)
    await service.change_links(request.app[DB_POOL], request.app[REDIS], who, body.link_ids,
                               archived=archived)
    return json_response({"success": True})


async def archive_links_bulk(request: web.Request) -> web.Response:
    return await _archive_bulk(request, True)


async def unarchive_links_bulk(request: web.Request) -> web.Response:
    return await _archive_bulk(request, False)


async def add_tags_bulk(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_model(request, TagsBulkRequest)
    tag = body.tag.strip()
    if not tag:
        raise BadRequest("tag must not be blank")
    count = await service.change_links(request.app[DB_POOL], request.app[REDIS], who,
                                       body.link_ids, add_tag=tag)
    return json_response({"success": True, "count": count})


ENDPOINTS = [
    Endpoint("POST", "/links/bulk", create_links_bulk,
             summary="Create up to 1000 links; one result per item, in order", tags=_TAGS,
             request=BulkCreateRequest, errors=(400, 401, 403, 404, 413, 429, 503)),
    Endpoint("DELETE", "/links/delete_bulk", delete_links_bulk, summary="Delete many links",
             tags=_TAGS, request=LinkIdsRequest),
    Endpoint("POST", "/links/archive_bulk", archive_links_bulk, summary="Archive many links",
             tags=_TAGS, request=LinkIdsRequest),
    Endpoint("POST", "/links/unarchive_bulk", unarchive_links_bulk,
             summary="Unarchive many links", tags=_TAGS, request=LinkIdsRequest),
    Endpoint("POST", "/tags/bulk", add_tags_bulk, summary="Add a tag to many links",
             tags=("tags",), request=TagsBulkRequest),
]
