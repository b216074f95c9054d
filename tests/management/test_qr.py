"""QR codes of links: PNG and SVG with colours and size, the bulk ZIP, and tenancy."""

from __future__ import annotations

import io
import zipfile

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.conftest import Tenant, make_tenant
from tests.management.links_support import Client, auth, create

pytestmark = pytest.mark.stack

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_qr_png_and_svg(api: Client, tenant: Tenant) -> None:
    link = await create(api, tenant, path="qr")
    png = await api.post(f"/links/qr/{link['idString']}", headers=auth(tenant),
                         json={"color": "ff0000", "backgroundColor": "#00ff00", "size": 4,
                               "type": "png", "useDomainSettings": False})
    assert png.status == 200 and png.content_type == "image/png"
    small = await png.read()
    assert small.startswith(PNG_MAGIC)
    large = await (await api.post(f"/links/qr/{link['idString']}", headers=auth(tenant),
                                  json={"size": 20, "useDomainSettings": False})).read()
    assert len(large) > len(small)
    svg = await api.post(f"/links/qr/{link['idString']}", headers=auth(tenant),
                         json={"type": "svg", "color": "#123456", "useDomainSettings": False})
    assert svg.content_type == "image/svg+xml"
    text = await svg.text()
    assert "<svg" in text and "#123456" in text
    for bad in ({"color": "red"}, {"size": 0}, {"size": 101}, {"type": "gif"}):
        answer = await api.post(f"/links/qr/{link['idString']}", headers=auth(tenant),
                                json=bad | {"useDomainSettings": False})
        assert answer.status == 400, bad


async def test_qr_bulk_zip_and_tenancy(api: Client, tenant: Tenant, db: asyncpg.Pool,
                                       redis_client: aioredis.Redis) -> None:
    links = [await create(api, tenant, originalURL=f"https://example.com/{i}")
             for i in range(3)]
    ids = [x["idString"] for x in links]
    answer = await api.post("/links/qr/bulk", headers=auth(tenant), json={
        "linkIds": ids, "type": "svg", "useDomainSettings": False})
    assert answer.status == 201 and answer.content_type == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(await answer.read()))
    assert sorted(archive.namelist()) == sorted(f"{i}.svg" for i in ids)
    stranger = auth(await make_tenant(db, redis_client))
    assert (await api.post(f"/links/qr/{ids[0]}", headers=stranger,
                           json={"useDomainSettings": False})).status == 404
    assert (await api.post("/links/qr/bulk", headers=stranger, json={
        "linkIds": ids, "type": "png", "useDomainSettings": False})).status == 404
