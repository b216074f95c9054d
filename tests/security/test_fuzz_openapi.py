"""Fuzzing the management and statistics APIs from their own OpenAPI documents
(schemathesis): for every operation, valid and invalid requests (bounded: a few dozen
each) with a real key. No answer is a 5xx, every answer conforms to the document
(status, content type, body schema), and invalid data is rejected."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from services.management.app import create_app as management_app
from services.management.settings import Settings as ManagementSettings
from services.stats.app import create_app as stats_app
from services.stats.settings import Settings as StatsSettings
from shared.openapi import ENDPOINTS
from tests.conftest import StackEnv, Tenant, make_tenant
from tests.security.serving import served_in_thread

pytestmark = [pytest.mark.stack, pytest.mark.slow]

POSITIVE_EXAMPLES = 20
NEGATIVE_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

# Operations that fail a check for some fuzzed input, with what fails: xfail, not strict
# (the fuzzer does not find it on every run), until fixed. Fixed since they were
# reported on issue 7: NUL characters in ids (7 link endpoints), an int64 overflow in
# GET /api/domains and an out-of-range beforeDate in last_clicks (500s, now 400s);
# unknown query parameters answered 200 (now 400 by shared.http.read_query).
KNOWN: dict[str, str] = {}


def _apps() -> dict[str, web.Application]:
    return {
        "management": management_app(ManagementSettings(rate_limit_enabled=False)),
        "stats": stats_app(StatsSettings(run_consumer=False)),
    }


def _operations() -> list[Any]:
    """(service, "METHOD /path") of every documented operation, found at collection."""
    params = []
    for service, app in _apps().items():
        for endpoint in app[ENDPOINTS]:
            label = f"{endpoint.method.upper()} {endpoint.template}"
            marks = [pytest.mark.xfail(reason=KNOWN[label], strict=False)] if label in KNOWN else []
            params.append(pytest.param(service, label, marks=marks, id=f"{service}:{label}"))
    return params


@dataclass
class Target:
    url: str
    schema: Any
    key: str


@pytest.fixture(scope="module")
async def fuzz_tenant(migrated: StackEnv, db: asyncpg.Pool,
                      redis_client: aioredis.Redis) -> Tenant:
    return await make_tenant(db, redis_client)


@pytest.fixture(scope="module")
def targets(fuzz_tenant: Tenant) -> Iterator[dict[str, Target]]:
    apps = _apps()
    with served_in_thread(apps["management"]) as management, served_in_thread(
        apps["stats"]
    ) as stats:
        found = {}
        for service, url in (("management", management), ("stats", stats)):
            document = requests.get(f"{url}/openapi.json", timeout=10).json()
            schema = schemathesis.openapi.from_dict(document)
            # Every request carries the real key (_fuzz), so the key header is not
            # generated: a negative case whose mutation was the missing key would go out
            # with the key put back, valid, and its 200 read as "negative data accepted"
            # (a CI run failed so, on GET /api/domains). Missing, wrong, revoked and
            # foreign keys are tested by tests/security/test_authorization.py.
            schema.config.generation.update(with_security_parameters=False)
            found[service] = Target(url, schema, fuzz_tenant.key)
        yield found


def _operation(target: Target, label: str) -> Any:
    for result in target.schema.get_all_operations():
        operation = result.ok()
        if operation.label == label:
            return operation
    raise AssertionError(f"{label} is registered but not in the OpenAPI document")


def _fuzz(operation: Any, mode: GenerationMode, examples: int, checks: list[Any],
          target: Target) -> None:
    headers = {"Authorization": target.key}

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        case.call_and_validate(base_url=target.url, headers=headers, checks=checks, timeout=10)

    try:
        fuzz()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid (no parameters, no body).
        if mode is not GenerationMode.NEGATIVE:
            raise


@pytest.mark.parametrize(("service", "label"), _operations())
def test_operation_survives_fuzzing(targets: dict[str, Target], service: str,
                                    label: str) -> None:
    target = targets[service]
    operation = _operation(target, label)
    _fuzz(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES, CHECKS, target)
    _fuzz(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES,
          [*CHECKS, negative_data_rejection], target)
