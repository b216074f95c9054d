"""The management app under test, shared by every management test module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.management.app import create_app
from services.management.settings import Settings
from tests.conftest import StackEnv, serve
from tests.management.links_support import Client


@pytest.fixture
async def api(migrated: StackEnv) -> AsyncIterator[Client]:
    # Rate limits are tested by their own suite (which builds its own app); here they
    # would only add flakiness.
    client = await serve(create_app(Settings(rate_limit_enabled=False)))
    try:
        yield client
    finally:
        await client.close()
