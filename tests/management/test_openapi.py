"""GET /openapi.json lists every registered Endpoint with its error answers and is a
valid OpenAPI 3.1 document; GET /docs serves Swagger UI from local files only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from shared.openapi import ENDPOINTS

pytestmark = pytest.mark.stack

Client = TestClient[web.Request, web.Application]




def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


async def test_document_lists_every_endpoint_with_its_errors(api: Client) -> None:
    answer = await api.get("/openapi.json")  # no key needed
    assert answer.status == 200
    document = await answer.json()
    validate(document)
    assert document["openapi"] == "3.1.0"

    endpoints = api.app[ENDPOINTS]
    assert len(endpoints) >= 9
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    declared = {(e.method.lower(), e.template) for e in endpoints}
    assert documented == declared
    for endpoint in endpoints:
        operation = document["paths"][endpoint.template][endpoint.method.lower()]
        assert set(map(str, endpoint.errors)) | {"200"} == set(operation["responses"])
        for status in endpoint.errors:
            schema = operation["responses"][str(status)]["content"]["application/json"]
            assert schema["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
        assert ("security" in operation) == endpoint.auth
        if endpoint.request is not None:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert resolve(document, ref)
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'"\$ref": "([^"]+)"', str(document).replace("'", '"')):
        assert resolve(document, ref) is not None, ref


async def test_platform_endpoints_are_documented(api: Client) -> None:
    paths = (await (await api.get("/openapi.json")).json())["paths"]
    for path, method in (("/api/domains", "get"), ("/domains/{domainId}", "get"),
                         ("/domains", "post"), ("/domains/settings/{domainId}", "post"),
                         ("/api/keys", "post"), ("/api/keys", "get"),
                         ("/api/keys/{keyId}", "delete"), ("/openapi.json", "get"),
                         ("/docs", "get")):
        assert method in paths[path], (method, path)
    settings = paths["/domains/settings/{domainId}"]["post"]
    assert {"400", "401", "403", "404", "409", "429", "503"} <= set(settings["responses"])
    assert settings["parameters"][0] == {"name": "domainId", "in": "path", "required": True,
                                         "schema": {"type": "string"}}


async def test_docs_page_serves_local_assets_only(api: Client) -> None:
    page = await api.get("/docs")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # no CDN, no network
    assets = re.findall(r"(?:src|href)=\"([^\"]+)\"", html)
    assert "docs/static/swagger-ui-bundle.js" in assets
    for asset in assets:
        answer = await api.get(f"/{asset}")
        assert answer.status == 200, asset
        assert len(await answer.read()) > 100
    assert 'url: "openapi.json"' in html
    assert (await api.get("/health")).status == 200  # no key needed either
