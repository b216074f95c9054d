"""Short.io's official Node SDK (``@short.io/client-node``, whose generated types are the
wire contract linkhop follows) works against the management API once its base URL is
changed: ``tests/sdk/contract.mjs`` makes every call through the SDK and checks every
answer the SDK has a zod schema for with that schema.

The SDK is installed from the npm registry with ``npm ci`` (the versions pinned by
``tests/sdk/package-lock.json``) into ``var/sdk``, once per lock file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from deploy.local.stack import repo_root
from services.management.app import create_app
from services.management.settings import Settings
from shared.ratelimit import RateRule
from tests.conftest import StackEnv, Tenant, serve
from tests.helpers import run_command
from tests.management.links_support import Client, auth

pytestmark = pytest.mark.stack

_SOURCE = repo_root() / "tests" / "sdk"
_FILES = ("package.json", "package-lock.json", "contract.mjs")
_INSTALL_TIMEOUT_S = 300.0
_RUN_TIMEOUT_S = 60.0


async def _installed_sdk() -> Path:
    """``var/sdk`` with the pinned SDK installed and the contract script next to it
    (Node looks packages up from the script's own directory)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed (Debian: apt-get install nodejs npm)")
    target = repo_root() / "var" / "sdk"
    target.mkdir(parents=True, exist_ok=True)
    lock = (_SOURCE / "package-lock.json").read_bytes() + (_SOURCE / "package.json").read_bytes()
    digest = hashlib.sha256(lock).hexdigest()
    stamp = target / ".installed"
    for name in _FILES:
        shutil.copyfile(_SOURCE / name, target / name)
    if not (stamp.exists() and stamp.read_text() == digest and (target / "node_modules").is_dir()):
        code, out, err = await run_command("npm", "ci", "--no-audit", "--no-fund",
                                           "--loglevel=error", cwd=target,
                                           timeout=_INSTALL_TIMEOUT_S)
        assert code == 0, f"npm ci failed:\n{out}\n{err}"
        stamp.write_text(digest)
    return target


async def _steps(scenario: str, api: Client, tenant: Tenant, public_key: str = ""
                 ) -> list[dict[str, Any]]:
    """The contract script's steps, after asserting that none of them found a problem."""
    sdk = await _installed_sdk()
    config = {"scenario": scenario, "baseUrl": str(api.make_url("")).rstrip("/"),
              "key": tenant.key, "publicKey": public_key, "domainId": tenant.domain_id,
              "hostname": tenant.hostname}
    code, out, err = await run_command("node", "contract.mjs", json.dumps(config), cwd=sdk,
                                       timeout=_RUN_TIMEOUT_S)
    assert code == 0, f"the contract script failed:\n{err}"
    steps: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])["steps"]
    failed = [f"{s['name']} ({s['status']}): {'; '.join(s['problems'])}"
              for s in steps if s["problems"]]
    assert not failed, "\n".join(failed)
    return steps


async def test_the_official_sdk_works_against_the_management_api(api: Client,
                                                                    tenant: Tenant) -> None:
    made = await api.post("/api/keys", headers=auth(tenant.key), json={"kind": "public"})
    assert made.status == 200, await made.text()
    steps = await _steps("calls", api, tenant, (await made.json())["key"])
    assert len(steps) >= 40, [s["name"] for s in steps]  # the script ran to its end


async def test_the_official_sdk_retries_a_429_as_linkhop_tells_it(
    migrated: StackEnv, tenant: Tenant
) -> None:
    """The SDK's retry reads Retry-After and the X-RateLimit-* headers of linkhop's 429."""
    limits = {"GET /api/domains": RateRule(limit=2, period=1)}
    api = await serve(create_app(Settings(rate_limits=limits)))
    try:
        steps = await _steps("rate-limit", api, tenant)
    finally:
        await api.close()
    assert len(steps) == 4, [s["name"] for s in steps]
