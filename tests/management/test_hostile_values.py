"""Values Postgres cannot take (NUL characters, out-of-range numbers) are a clear 400 at
the boundary, never a 500, and change nothing."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import Tenant
from tests.management.links_support import Client, auth, count_links

pytestmark = pytest.mark.stack


async def test_nul_in_body_query_and_path_is_refused(api: Client, tenant: Tenant,
                                                     db: asyncpg.Pool) -> None:
    before = await count_links(db, tenant.domain_id)
    body = {"domain": tenant.hostname, "originalURL": "https://example.com/", "title": "a\x00b"}
    answer = await api.post("/links", json=body, headers=auth(tenant))
    assert answer.status == 400
    assert "NUL" in (await answer.json())["error"]
    assert await count_links(db, tenant.domain_id) == before

    expand = await api.get("/links/expand", params={"domain": tenant.hostname, "path": "a\x00"},
                           headers=auth(tenant))
    assert expand.status == 400

    by_path = await api.get("/links/lnk_%00abc", headers=auth(tenant))
    assert by_path.status in (400, 404)
    archive = await api.post("/links/archive", json={"link_id": "lnk_\x00"},
                             headers=auth(tenant))
    assert archive.status == 400


async def test_out_of_range_numbers_are_refused(api: Client, tenant: Tenant) -> None:
    answer = await api.get("/api/domains", params={"offset": str(2**80)}, headers=auth(tenant))
    assert answer.status == 400
