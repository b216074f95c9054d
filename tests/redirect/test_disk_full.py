"""The spool's disk full while Kafka is away (a real limit of the OS: RLIMIT_FSIZE on the
redirect process, so its writes past the limit fail as on a full disk).

Every visitor is still redirected; the events that cannot be written are counted as
``dropped`` (the only way the edge loses an event it accepted, docs/reliability.md);
none is half-written in the spool; and once there is room again, events are spooled
again without a restart."""

from __future__ import annotations

import json
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.conftest import StackEnv, Tenant
from tests.faults.support import metric, steady_load
from tests.helpers import eventually
from tests.redirect.helpers import add_link, closed_port, redirect_process

pytestmark = pytest.mark.stack

SPOOL_LIMIT = 64 * 1024  # bytes a file of the redirect process may grow to


def _limit_file_size() -> None:  # runs in the child, before it starts Python
    resource.setrlimit(resource.RLIMIT_FSIZE, (SPOOL_LIMIT, resource.RLIM_INFINITY))


@pytest.fixture
def edge_with_a_small_disk(migrated: StackEnv, tmp_path: Path
                           ) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``python -m services.redirect`` with Kafka unreachable and its files limited to
    SPOOL_LIMIT bytes (its output is discarded: the limit would cut a log file too)."""
    spool = tmp_path / "spool"
    env = {"LINKHOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port()}",
           "LINKHOP_REDIRECT_SPOOL_DIR": str(spool)}
    with redirect_process(migrated, env, preexec_fn=_limit_file_size) as (process, url):
        yield process, url, spool


async def _accounted(url: str) -> tuple[float, float]:
    return (await metric(url, "linkhop_click_events_spooled_total"),
            await metric(url, "linkhop_click_events_dropped_total"))


def _spooled_lines(spool: Path) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(spool.iterdir()):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"a torn line at the end of {path.name}"
        lines.extend(line for line in data.split(b"\n") if line)
    return lines


async def test_a_full_disk_drops_and_counts_events_and_spools_again_once_there_is_room(
    edge_with_a_small_disk: tuple[subprocess.Popen[bytes], str, Path],
    db: asyncpg.Pool, redis_client: aioredis.Redis, tenant: Tenant,
) -> None:
    process, url, spool = edge_with_a_small_disk
    link = await add_link(db, redis_client, tenant)

    async def load(requests: int) -> int:
        result = await steady_load(url, tenant.hostname, link.path, requests=requests,
                                   rate=400.0)
        assert result.redirected == result.sent, result.summary()  # no visitor notices
        return result.redirected

    accepted = await load(600)  # ~270 KB of events: past the limit
    spooled, dropped = await eventually(lambda: _accounted(url),
                                        lambda sd: sum(sd) >= accepted, timeout=10)
    assert spooled + dropped == accepted  # every accepted event is counted once
    assert dropped > 0 and spooled > 0
    lines = _spooled_lines(spool)
    assert len(lines) == spooled
    assert all(json.loads(line)["link_id"] == link.link_id for line in lines)
    assert sum(path.stat().st_size for path in spool.iterdir()) <= SPOOL_LIMIT

    # Room again (the limit lifted on the running process): events are spooled again.
    resource.prlimit(process.pid, resource.RLIMIT_FSIZE,
                     (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    more = await load(200)
    spooled_after, dropped_after = await eventually(
        lambda: _accounted(url), lambda sd: sum(sd) >= accepted + more, timeout=10)
    print(f"disk full: {accepted} accepted, {spooled:g} spooled, {dropped:g} dropped; room "
          f"again: {more} more, {spooled_after - spooled:g} spooled")
    assert dropped_after == dropped
    assert spooled_after == spooled + more
    assert len(_spooled_lines(spool)) == spooled_after
