"""Section 3: the management API: single creates at a steady rate, bulk creates of 1000
links (timed while seeding the redirect's links), listing 10,000 links page by page."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import aiohttp

from bench.config import BenchConfig
from bench.fixtures import Seed
from bench.httpclient import Answer, call, steady_rate
from bench.numbers import at_most, median, percentile
from bench.report import Report, fmt, table


@dataclass
class Listing:
    seconds: float
    pages: int
    links: int
    page_ms: list[float]


@dataclass
class ManagementResults:
    create_p50: list[float] = field(default_factory=list)
    create_p99: list[float] = field(default_factory=list)
    create_failures: dict[str, int] = field(default_factory=dict)
    listings: list[Listing] = field(default_factory=list)
    listing_error: str = ""


async def _list_all(session: aiohttp.ClientSession, url: str, seed: Seed,
                    limit: int) -> Listing:
    started = time.perf_counter()
    token: str | None = None
    pages = links = 0
    page_ms: list[float] = []
    while True:
        params = {"domain_id": str(seed.domain_id), "limit": str(limit)}
        if token:
            params["pageToken"] = token
        answer = await call(session, "GET", f"{url}/api/links", key=seed.key(pages),
                            params=params)
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise RuntimeError(f"GET /api/links answered {answer.status}: {str(answer.body)[:200]}")
        pages += 1
        links += len(answer.body.get("links") or [])
        page_ms.append(answer.ms)
        token = answer.body.get("nextPageToken")
        if not token or pages > 10_000:
            break
    return Listing(time.perf_counter() - started, pages, links, page_ms)


async def _run(url: str, seed: Seed, cfg: BenchConfig) -> ManagementResults:
    results = ManagementResults()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for run_index in range(cfg.runs):
            tag = uuid.uuid4().hex[:6]

            async def create(i: int, tag: str = tag, run_index: int = run_index) -> Answer:
                return await call(session, "POST", f"{url}/links", key=seed.key(i), json={
                    "domain": seed.hostname, "originalURL": f"https://example.com/s/{tag}/{i}",
                    "path": f"s{tag}{run_index}x{i}"})

            timed = await steady_rate(create, count=cfg.creates, per_second=cfg.creates_per_s)
            results.create_p50.append(percentile(timed.latencies_ms, 50))
            results.create_p99.append(percentile(timed.latencies_ms, 99))
            for why, n in timed.failures.items():
                results.create_failures[why] = results.create_failures.get(why, 0) + n
        try:
            for _ in range(cfg.runs):
                results.listings.append(await _list_all(session, url, seed, cfg.list_limit))
        except (RuntimeError, aiohttp.ClientError) as exc:
            results.listing_error = str(exc)
    return results


def run(management_url: str, seed: Seed, cfg: BenchConfig) -> ManagementResults:
    return asyncio.run(_run(management_url, seed, cfg))


def render(results: ManagementResults, seed: Seed, cfg: BenchConfig, report: Report) -> None:
    bulk = median(seed.bulk_ms)
    rows = [
        [f"single create (POST /links), {cfg.creates} at {cfg.creates_per_s:.0f}/s",
         fmt(median(results.create_p50), 1), fmt(median(results.create_p99), 1),
         ", ".join(f"{k}: {v}" for k, v in results.create_failures.items()) or "none"],
        [f"bulk create of 1000 links (POST /links/bulk), {len(seed.bulk_ms)} calls",
         fmt(bulk, 1) + " (median)", fmt(max(seed.bulk_ms, default=float("nan")), 1) + " (max)",
         "" if seed.bulk_ms else seed.how],
    ]
    for_listing = results.listings
    if for_listing:
        pages = [p for listing in for_listing for p in listing.page_ms]
        rows.append([
            f"list {for_listing[0].links:,} links, {for_listing[0].pages} pages of "
            f"{cfg.list_limit} (GET /api/links): whole listing "
            f"{fmt(median([x.seconds * 1000 for x in for_listing]), 0)} ms (median)",
            fmt(percentile(pages, 50), 1) + " per page", fmt(percentile(pages, 99), 1)
            + " per page", ""])
    else:
        rows.append(["list links page by page (GET /api/links)", "—", "—",
                     results.listing_error or "not measured"])
    body = table(["operation", "p50 ms", "p99 ms", "failures"], rows)
    body += (
        "\n\n- Timed by the client on loopback (request sent to answer parsed), so they include"
        " JSON encoding and parsing on both sides; the bulk figures are the calls that created"
        " the redirect benchmark's links, each of 1000 links, on a fresh domain."
        "\n- Requests rotate over several API keys of the domain: the per-key rate limits are"
        " not what is measured (429 answers would be waited out and retried, untimed)."
    )
    report.section("Management API", body)
    report.target("#3", "bulk create of 1000 links", "< 300 ms", fmt(bulk, 0, " ms"),
                  at_most(bulk, 300.0))
