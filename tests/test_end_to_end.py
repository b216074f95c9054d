"""The walking skeleton, end to end on the real stack: create a link with the API,
follow the redirect, and see totalClicks reach exactly the number of visits."""

from __future__ import annotations

import pytest

from services.management.app import create_app as management_app
from services.management.settings import Settings as ManagementSettings
from services.redirect.app import create_app as redirect_app
from services.redirect.settings import Settings as RedirectSettings
from services.stats.app import create_app as stats_app
from services.stats.settings import Settings as StatsSettings
from shared.kafka_admin import ensure_topics
from tests.conftest import StackEnv, Tenant, serve, unique
from tests.helpers import eventually

pytestmark = pytest.mark.stack

VISITS = 25


async def test_link_redirect_and_click_count(migrated: StackEnv, tenant: Tenant, topic: str
                                             ) -> None:
    await ensure_topics(migrated.kafka_bootstrap, [topic])
    management = await serve(management_app(ManagementSettings()))
    redirect = await serve(redirect_app(RedirectSettings(clicks_topic=topic)))
    stats = await serve(
        stats_app(StatsSettings(clicks_topic=topic, consumer_group=unique("group-")))
    )
    try:
        created = await management.post(
            "/links",
            json={"domain": tenant.hostname, "originalURL": "https://example.com/landing"},
            headers={"Authorization": tenant.key},
        )
        assert created.status == 200, await created.text()
        link = await created.json()
        assert link["shortURL"] == f"https://{tenant.hostname}/{link['path']}"

        for _ in range(VISITS):
            answer = await redirect.get(
                f"/{link['path']}", headers={"Host": tenant.hostname}, allow_redirects=False
            )
            assert answer.status == 302
            assert answer.headers["Location"] == "https://example.com/landing"

        missing = await redirect.get(
            "/no-such-path", headers={"Host": tenant.hostname}, allow_redirects=False
        )
        assert missing.status == 404

        async def total() -> int:
            answer = await stats.get(
                f"/statistics/link/{link['idString']}",
                headers={"Authorization": f"Bearer {tenant.key}"},
            )
            assert answer.status == 200, await answer.text()
            body = await answer.json()
            return int(body["totalClicks"])

        assert await eventually(total, lambda n: n >= VISITS, timeout=30) == VISITS
    finally:
        for client in (management, redirect, stats):
            await client.close()
