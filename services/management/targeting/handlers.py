"""HTTP handlers for geo targeting: per-country and per-region destinations."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.management.auth import principal
from services.management.targeting import service
from services.management.targeting.codes import country_code, region_code, regions_of
from services.management.targeting.schemas import CountryRule, CountryRules, RegionRule, RegionRules
from shared.errors import BadRequest
from shared.http import json_response, read_model
from shared.openapi import Endpoint, add_endpoints
from shared.resources import DB_POOL, REDIS

_TAGS = ("targeting",)


def _country_json(link_id: str, country: str, url: str) -> dict[str, Any]:
    return {"linkId": link_id, "country": country, "originalURL": url}


def _region_json(link_id: str, country: str, region: str, url: str) -> dict[str, Any]:
    return {"linkId": link_id, "country": country, "region": region, "originalURL": url}


def _code(parse: Any, *args: str) -> str:
    try:
        code: str = parse(*args)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return code


async def get_countries(request: web.Request) -> web.Response:
    who = await principal(request)
    link_id = request.match_info["linkId"]
    rows = await service.read_rules(request.app[DB_POOL], who, link_id, regions=False)
    return json_response([_country_json(link_id, r["country"], r["original_url"]) for r in rows])


async def set_country(request: web.Request) -> web.Response:
    who = await principal(request)
    link_id = request.match_info["linkId"]
    rule = await read_model(request, CountryRule)
    await service.change(request.app[DB_POOL], request.app[REDIS], who, link_id,
                         service.upsert_countries([(rule.country, rule.originalURL)]),
                         [rule.originalURL])
    return json_response(_country_json(link_id, rule.country, rule.originalURL))


async def set_countries_bulk(request: web.Request) -> web.Response:
    who = await principal(request)
    link_id = request.match_info["linkId"]
    rules = (await read_model(request, CountryRules)).root
    pairs = list({r.country: r.originalURL for r in rules}.items())  # last one wins
    await service.change(request.app[DB_POOL], request.app[REDIS], who, link_id,
                         service.upsert_countries(pairs), [u for _, u in pairs])
    return json_response([_country_json(link_id, c, u) for c, u in pairs])


async def delete_country(request: web.Request) -> web.Response:
    who = await principal(request)
    country = _code(country_code, request.match_info["country"])
    await service.change(request.app[DB_POOL], request.app[REDIS], who,
                         request.match_info["linkId"], service.delete_country(country), [])
    return json_response({"success": True})


async def get_regions(request: web.Request) -> web.Response:
    who = await principal(request)
    link_id = request.match_info["linkId"]
    rows = await service.read_rules(request.app[DB_POOL], who, link_id, regions=True)
    return json_response([_region_json(link_id, r["country"], r["region"], r["original_url"])
                          for r in rows])


async def set_region(request: web.Request) -> web.Response:
    who = await principal(request)
    link_id = request.match_info["linkId"]
    rule = await read_model(request, RegionRule)
    await service.change(request.app[DB_POOL], request.app[REDIS], who, link_id,
                         service.upsert_regions([(rule.country, rule.region, rule.originalURL)]),
                         [rule.originalURL])
    return json_response(_region_json(link_id, rule.country, rule.region, rule.originalURL))


async def set_regions_bulk(request: web.Request) -> web.Response:
    who = await principal(request)
    link_id = request.match_info["linkId"]
    rules = (await read_model(request, RegionRules)).root
    unique = {(r.country, r.region): r.originalURL for r in rules}  # last one wins
    triples = [(c, r, u) for (c, r), u in unique.items()]
    await service.change(request.app[DB_POOL], request.app[REDIS], who, link_id,
                         service.upsert_regions(triples), [u for _, _, u in triples])
    return json_response([_region_json(link_id, c, r, u) for c, r, u in triples])


async def delete_region(request: web.Request) -> web.Response:
    who = await principal(request)
    country = _code(country_code, request.match_info["country"])
    region = _code(region_code, country, request.match_info["region"])
    await service.change(request.app[DB_POOL], request.app[REDIS], who,
                         request.match_info["linkId"], service.delete_region(country, region),
                         [])
    return json_response({"success": True})


async def list_country_regions(request: web.Request) -> web.Response:
    await principal(request)
    country = _code(country_code, request.match_info["country"])
    return json_response([{"region": code, "name": name}
                          for code, name in regions_of(country).items()])


ENDPOINTS = [
    Endpoint("GET", "/link_country/{linkId}", get_countries,
             summary="A link's per-country destinations", tags=_TAGS),
    Endpoint("POST", "/link_country/bulk/{linkId}", set_countries_bulk,
             summary="Set many per-country destinations", tags=_TAGS, request=CountryRules),
    Endpoint("POST", "/link_country/{linkId}", set_country,
             summary="Set a per-country destination", tags=_TAGS, request=CountryRule),
    Endpoint("DELETE", "/link_country/{linkId}/{country}", delete_country,
             summary="Remove a per-country destination", tags=_TAGS),
    Endpoint("GET", "/link_region/list/{country}", list_country_regions,
             summary="A country's ISO 3166-2 regions", tags=_TAGS),
    Endpoint("GET", "/link_region/{linkId}", get_regions,
             summary="A link's per-region destinations", tags=_TAGS),
    Endpoint("POST", "/link_region/bulk/{linkId}", set_regions_bulk,
             summary="Set many per-region destinations", tags=_TAGS, request=RegionRules),
    Endpoint("POST", "/link_region/{linkId}", set_region,
             summary="Set a per-region destination", tags=_TAGS, request=RegionRule),
    Endpoint("DELETE", "/link_region/{linkId}/{country}/{region}", delete_region,
             summary="Remove a per-region destination", tags=_TAGS),
]


def add_routes(app: web.Application) -> None:
    add_endpoints(app, ENDPOINTS)
