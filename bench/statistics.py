"""Section 4: the statistics endpoints on a domain whose rollups hold ``stats_clicks``
clicks over 10,000 links and 90 days (loaded by bench.stats_loader)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import aiohttp
import asyncpg

from bench import profile, servers, sql, stats_loader
from bench.config import BenchConfig
from bench.environment import STATS_PORTS, BenchEnv
from bench.fixtures import PATH_PREFIX, create_domain_and_keys
from bench.httpclient import Answer, call, sequential
from bench.numbers import at_most, median, percentile
from bench.report import Report, fmt, table
from deploy.local import processes

LINKS = 10_000
MAX_SECONDS_PER_ENDPOINT = 4.0  # a slow endpoint gets fewer calls, not a longer bench
P99_TARGET_MS = 20.0  # issue #5
PROFILE_SECONDS = 4
ENDPOINTS = {
    "link": "link statistics: GET /statistics/link/{idString}?period=total",
    "domain": "domain statistics: GET /statistics/domain/{id}?period=last30",
    "top": "top links: POST /statistics/domain/{id}/top {column: path, period: total}",
}


@dataclass
class StatisticsResults:
    clicks: int = 0
    load_seconds: float = 0.0
    calls: dict[str, list[int]] = field(default_factory=dict)
    p50: dict[str, list[float]] = field(default_factory=dict)
    p99: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)  # endpoint -> raw py-spy output


async def _prepare(env: BenchEnv, hostname: str, cfg: BenchConfig
                   ) -> tuple[int, list[str], list[str], float]:
    domain_id, keys = await create_domain_and_keys(env, hostname, 2)
    conn = await asyncpg.connect(env.database_url, timeout=10)
    try:
        team = await sql.domain_team(conn, domain_id)
        await sql.insert_links(conn, domain_id=domain_id, team_id=team, prefix=PATH_PREFIX,
                               first=0, count=LINKS)
        rows = await sql.domain_links(conn, domain_id)
        started = time.perf_counter()
        await stats_loader.load(conn, domain_id=domain_id, link_ids=[r["id"] for r in rows],
                                clicks=cfg.stats_clicks, days=cfg.stats_days)
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return domain_id, keys, [str(r["id_string"]) for r in rows], seconds


class _Calls:
    """One call of each measured endpoint."""

    def __init__(self, session: aiohttp.ClientSession, url: str, domain_id: int, key: str,
                 id_strings: list[str]) -> None:
        self.session, self.url, self.domain_id, self.key = session, url, domain_id, key
        self.id_strings = id_strings
        self.rng = random.Random(11)

    async def link(self, i: int) -> Answer:
        link = self.rng.choice(self.id_strings)
        return await call(self.session, "GET", f"{self.url}/statistics/link/{link}",
                          key=self.key, params={"period": "total", "tz": "UTC"})

    async def domain(self, i: int) -> Answer:
        return await call(self.session, "GET", f"{self.url}/statistics/domain/{self.domain_id}",
                          key=self.key, params={"period": "last30", "tz": "UTC"})

    async def top(self, i: int) -> Answer:
        return await call(self.session, "POST",
                          f"{self.url}/statistics/domain/{self.domain_id}/top",
                          key=self.key, json={"column": "path", "period": "total"})


async def _measure(url: str, domain_id: int, keys: list[str], id_strings: list[str],
                   cfg: BenchConfig, results: StatisticsResults) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        calls = _Calls(session, url, domain_id, keys[0], id_strings)
        endpoints = {"link": calls.link, "domain": calls.domain, "top": calls.top}
        for _ in range(cfg.runs):
            for name, one in endpoints.items():
                await one(0)  # warm: the first call pays for connection set-up
                timed = await sequential(one, count=cfg.stats_calls,
                                         max_seconds=MAX_SECONDS_PER_ENDPOINT)
                results.calls.setdefault(name, []).append(len(timed.latencies_ms))
                results.p50.setdefault(name, []).append(percentile(timed.latencies_ms, 50))
                results.p99.setdefault(name, []).append(percentile(timed.latencies_ms, 99))
                failed = results.failures.setdefault(name, {})
                for why, n in timed.failures.items():
                    failed[why] = failed.get(why, 0) + n


async def _repeat(url: str, domain_id: int, key: str, id_strings: list[str], name: str,
                  seconds: float) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        calls = _Calls(session, url, domain_id, key, id_strings)
        await sequential(getattr(calls, name), count=1_000_000, max_seconds=seconds)


def _profile_missed(env: BenchEnv, pid: int, url: str, domain_id: int, key: str,
                    id_strings: list[str], results: StatisticsResults) -> None:
    """py-spy on the stats API during more calls of each endpoint that missed its target."""
    for name in ENDPOINTS:
        p99 = median(results.p99.get(name, []))
        if not p99 > P99_TARGET_MS:
            continue

        def calls(name: str = name) -> None:
            asyncio.run(_repeat(url, domain_id, key, id_strings, name, PROFILE_SECONDS))

        raw = profile.record_during(pid, PROFILE_SECONDS, env.var / f"profile-stats-{name}.txt",
                                    calls)
        if raw is not None:
            results.profiles[name] = raw


def run(env: BenchEnv, cfg: BenchConfig) -> StatisticsResults:
    results = StatisticsResults(clicks=cfg.stats_clicks)
    domain_id, keys, id_strings, results.load_seconds = asyncio.run(
        _prepare(env, f"stats-{env.stamp}.bench.linkhop.localhost", cfg))
    port = STATS_PORTS[0]
    server = servers.start_linkhop(
        env.var, "stats", "bench-stats-api",
        env.service_env(LINKHOP_STATS_PORT=str(port), LINKHOP_STATS_RUN_CONSUMER="false"))
    try:
        processes.wait_healthy(f"http://127.0.0.1:{port}", process=server.process)
        url = f"http://127.0.0.1:{port}"
        asyncio.run(_measure(url, domain_id, keys, id_strings, cfg, results))
        if cfg.profile:
            _profile_missed(env, server.pid, url, domain_id, keys[0], id_strings, results)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
    return results


def render(results: StatisticsResults, cfg: BenchConfig, report: Report) -> None:
    rows = []
    for name, label in ENDPOINTS.items():
        failures = results.failures.get(name, {})
        calls = sum(results.calls.get(name, []))
        rows.append([label, f"{calls:,}", fmt(median(results.p50.get(name, [])), 1),
                     fmt(median(results.p99.get(name, [])), 1),
                     ", ".join(f"{k}: {v}" for k, v in failures.items()) or "none"])
    body = table(["endpoint", "calls", "p50 ms", "p99 ms", "failures"], rows)
    body += (
        f"\n\n- The domain's rollups hold {results.clicks:,} clicks over {LINKS:,} links and "
        f"{cfg.stats_days} days, loaded with SQL by `bench/stats_loader.py` in "
        f"{results.load_seconds:.1f} s (the rows the consumer would write: facts per link and "
        "per domain by hour, totals per link and per domain by UTC day and all time, "
        "country/browser/os/device breakdowns by UTC day and all time)."
        f"\n- Up to {cfg.stats_calls} sequential calls per endpoint and run, at most "
        f"{MAX_SECONDS_PER_ENDPOINT:.0f} s of them (link statistics of a "
        "random link each call), by a stats process running only the API "
        "(LINKHOP_STATS_RUN_CONSUMER=false); timed by the client on loopback."
    )
    if results.clicks < 1_000_000:
        body += "\n- Smaller than the issue's 1,000,000 clicks: a --quick smoke run."
    report.section("Statistics API", body)
    for name in ENDPOINTS:
        p99 = median(results.p99.get(name, []))
        report.target("#5", f"{name} statistics p99 ({results.clicks:,} clicks)", "< 20 ms",
                      fmt(p99, 1, " ms"), at_most(p99, P99_TARGET_MS))
        if name in results.profiles:
            report.profiles.append((f"statistics API, {ENDPOINTS[name]}", profile.markdown(
                results.profiles[name], "the stats API process during sequential calls")))
