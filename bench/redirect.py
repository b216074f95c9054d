"""Section 1: the redirect edge against nginx (the machine's ceiling) and a bare aiohttp
handler (the framework's ceiling), one worker and then two, at 64 and 256 connections.

One round = one load of every scenario, back to back; every ratio is taken inside one
round, and each figure is the median over the rounds.

With one worker at 64 connections, the rounds also load two "quiet" servers (the same
service with its click events dropped at the queue: bench/quiet_redirect.py), each right
after the scenario it mirrors, and read every loaded process's CPU time: the budget
table says how much CPU per request linkhop adds to bare aiohttp, how much of it is the
production of the click events, and how much the two ratio targets leave.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_sync

from bench import profile, servers
from bench.config import BenchConfig
from bench.environment import BARE_PORT, NGINX_PORT, REDIRECT_PORT, BenchEnv
from bench.fixtures import Seed
from bench.kafka_count import TopicCounter
from bench.numbers import at_least, at_most, median, median_ratio
from bench.report import Report, fmt, pct, table
from bench.wrk import WrkOutputError, WrkResult, cycling_paths_script, run_wrk, wrk_command
from deploy.local import processes, stack

log = logging.getLogger("bench")

NO_CACHE_PORT = REDIRECT_PORT + 4
# The CPU budget's servers (bench/quiet_redirect.py): the hot and the no-cache redirect
# with their click events dropped at the queue.
QUIET_PORT = REDIRECT_PORT + 7
QUIET_NO_CACHE_PORT = REDIRECT_PORT + 8
# The redirect's settings (by field name) for the "every request a different slug"
# processes: an in-process cache of one entry (the domain's record stays cached, no
# link does), and the Postgres-fallback rate limit lifted so that, with Redis stopped,
# the Postgres path itself is measured rather than the limiter protecting it.
_NO_CACHE_SETTINGS = {"cache_size": "1", "db_fallback_rate": "1000000",
                      "db_fallback_burst": "1000000"}

SCENARIOS = {
    "nginx": "nginx, fixed 301",
    "bare": "bare aiohttp + uvloop, fixed 302",
    "hot": "linkhop, one hot link (in-process cache)",
    "distinct": "linkhop, 10,000 links, a different slug each request (Redis)",
    "pg": "linkhop, Redis stopped (Postgres fallback)",
}
LINKHOP = ("hot", "distinct", "pg")
# Measured only with one worker at 64 connections, each right after the scenario it
# mirrors: where the worker's CPU per request goes (render's budget table).
BUDGET_CONNECTIONS = 64
BUDGET_ROWS = {
    "bare": SCENARIOS["bare"],
    "hot": SCENARIOS["hot"],
    "hot_quiet": "the hot link, click events dropped at the queue",
    "distinct": SCENARIOS["distinct"],
    "distinct_quiet": "a different slug each request, click events dropped at the queue",
}


def no_cache_env() -> dict[str, str]:
    """The env of the no-cache processes; empty when the redirect has no cache setting."""
    from services.redirect.settings import Settings

    if "cache_size" not in Settings.model_fields:
        return {}
    return {f"LINKHOP_REDIRECT_{name.upper()}": value
            for name, value in _NO_CACHE_SETTINGS.items() if name in Settings.model_fields}


@dataclass
class Cell:
    """All rounds of one (workers, connections) block."""

    loads: dict[str, list[WrkResult]] = field(default_factory=dict)
    events: dict[str, list[int]] = field(default_factory=dict)
    redis_cmds: dict[str, list[float]] = field(default_factory=dict)
    redis_keys: dict[str, list[float]] = field(default_factory=dict)
    # The loaded process's CPU time (user + system, all its threads) per request, in us:
    # one-worker blocks only, where one process serves the whole load.
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def rps(self, scenario: str) -> list[float]:
        return [r.rps for r in self.loads.get(scenario, [])]


@dataclass
class RedirectResults:
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)
    plans: dict[int, str] = field(default_factory=dict)
    cache_note: str = ""
    profiles: dict[str, str] = field(default_factory=dict)  # scenario -> raw py-spy file


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads."""
    return processes.cpu_seconds(Path("/proc") / str(pid) / "stat")


def _redis_counts(port: int) -> tuple[int, int] | None:
    """(commands processed, keys read) by the private Redis so far."""
    try:
        info: dict[str, Any] = redis_sync.Redis(port=port, socket_timeout=2).info("stats")  # type: ignore[assignment]
    except redis_sync.RedisError:
        return None
    return (int(info["total_commands_processed"]),
            int(info["keyspace_hits"]) + int(info["keyspace_misses"]))


class _Block:
    """The servers of one worker count, and how to load each scenario."""

    def __init__(self, env: BenchEnv, seed: Seed, cfg: BenchConfig, workers: int,
                 topic: str, script: Path, plan: servers.CpuPlan) -> None:
        self.env, self.seed, self.cfg, self.plan = env, seed, cfg, plan
        self.script = script
        self.started: list[servers.Spawned] = []
        self.pin_backends()
        self.started.append(servers.start_nginx(env.var, NGINX_PORT, workers, plan.server_cores))
        self.bare = servers.start_bare(env.var, BARE_PORT, plan)
        self.started += self.bare
        self.cached = self._start_redirect("redirect", REDIRECT_PORT, topic, {})
        self.distinct_port = REDIRECT_PORT
        self.nocache: list[servers.Spawned] = []
        extra = no_cache_env()
        if extra:
            try:
                self.nocache = self._start_redirect("redirect-nocache", NO_CACHE_PORT, topic,
                                                    extra)
                self.distinct_port = NO_CACHE_PORT
            except (RuntimeError, TimeoutError) as exc:
                log.warning("redirect without in-process cache did not start: %s", exc)
        # One process per scenario, for the CPU figures: one-worker blocks only.
        self.pids: dict[str, int] = {}
        if workers == 1:
            self.pids = {"bare": self.bare[0].pid, "hot": self.cached[0].pid,
                         "distinct": (self.nocache or self.cached)[0].pid}
            self._start_quiet(topic, extra)

    def _redirect_env(self, port: int, topic: str, spool: str, extra: dict[str, str]
                      ) -> dict[str, str]:
        """The environment of one redirect process (the service or a quiet copy)."""
        return self.env.service_env(
            LINKHOP_REDIRECT_PORT=str(port), LINKHOP_CLICKS_TOPIC=topic,
            LINKHOP_REDIRECT_SECRET=f"bench-{self.env.stamp}",
            LINKHOP_REDIRECT_SPOOL_DIR=str(self.env.var / "spool" / spool), **extra)

    def _start_quiet(self, topic: str, no_cache: dict[str, str]) -> None:
        """The budget's servers: the hot and the no-cache redirect, events dropped."""
        for scenario, port, extra in (("hot_quiet", QUIET_PORT, {}),
                                      ("distinct_quiet", QUIET_NO_CACHE_PORT, no_cache)):
            server = servers.spawn(self.env.var, f"bench-redirect-{scenario}",
                                   [sys.executable, "-m", "bench.quiet_redirect"],
                                   cores=self.plan.workers[0],
                                   env=self._redirect_env(port, topic, scenario, extra))
            self.started.append(server)
            try:
                processes.wait_healthy(f"http://127.0.0.1:{port}", process=server.process)
            except (RuntimeError, TimeoutError) as exc:
                log.warning("%s did not start: %s", scenario, exc)
                continue
            self.pids[scenario] = server.pid

    def scenarios(self, connections: int) -> list[str]:
        """The loads of one round, in order; each quiet one right after its model."""
        order: list[str] = []
        for scenario in SCENARIOS:
            order.append(scenario)
            quiet = f"{scenario}_quiet"
            if connections == BUDGET_CONNECTIONS and quiet in self.pids:
                order.append(quiet)
        return order

    def _start_redirect(self, label: str, port: int, topic: str,
                        extra: dict[str, str]) -> list[servers.Spawned]:
        started = [
            servers.start_linkhop(self.env.var, "redirect", f"bench-{label}-{i}",
                                  self._redirect_env(port, topic, f"{label}-{i}", extra), cores)
            for i, cores in enumerate(self.plan.workers)
        ]
        self.started += started
        for server in started:
            processes.wait_healthy(f"http://127.0.0.1:{port}", process=server.process)
        return started

    def pin_backends(self, cores: list[int] | None = None) -> None:
        """The private Redis and the Kafka broker on the load generator's cores, never on
        a server worker's own core: on a deployment they are other machines, and one that
        the scheduler puts on the worker's core takes its CPU from the worker under test
        (the references use neither, so they do not meet it there). The broker takes
        the click events of every linkhop load: a few % of a core."""
        pids = [stack.server_pids(self.env.paths)["kafka"]]
        if self.env.redis is not None:
            pids.append(self.env.redis.pid)
        for pid in pids:
            if pid is not None:
                servers.pin(pid, cores or self.plan.load)

    def command(self, scenario: str, connections: int, seconds: float) -> list[str]:
        host = self.seed.hostname
        if scenario == "nginx":
            url, host_header, script = f"http://127.0.0.1:{NGINX_PORT}/", None, None
        elif scenario == "bare":
            url, host_header, script = f"http://127.0.0.1:{BARE_PORT}/x", None, None
        elif scenario == "hot":
            url, host_header, script = f"http://127.0.0.1:{REDIRECT_PORT}/hot", host, None
        elif scenario == "hot_quiet":
            url, host_header, script = f"http://127.0.0.1:{QUIET_PORT}/hot", host, None
        elif scenario == "distinct_quiet":
            url, host_header, script = (f"http://127.0.0.1:{QUIET_NO_CACHE_PORT}/", host,
                                        self.script)
        else:
            url, host_header, script = (f"http://127.0.0.1:{self.distinct_port}/", host,
                                        self.script)
        return wrk_command(url, connections=connections, seconds=seconds, host=host_header,
                           script=script, cores=self.plan.load)

    def load(self, scenario: str, connections: int, seconds: float) -> WrkResult:
        return run_wrk(self.command(scenario, connections, seconds), timeout=seconds + 30)

    def stop(self) -> None:
        for server in reversed(self.started):
            with contextlib.suppress(Exception):
                server.stop()
        self.pin_backends(sorted(os.sched_getaffinity(0)))  # the later sections: as started


def _wait_redirect_healthy(port: int, timeout: float = 20.0) -> None:
    with contextlib.suppress(TimeoutError, RuntimeError):
        processes.wait_healthy(f"http://127.0.0.1:{port}", timeout=timeout)


def _round(block: _Block, cell: Cell, counter: TopicCounter, connections: int,
           seconds: float, env: BenchEnv) -> None:
    for scenario in block.scenarios(connections):
        redis_before = _redis_counts(env.redis_port)
        if scenario == "pg":
            env.stop_redis()
        baseline = counter.total() if scenario in LINKHOP else 0
        pid = block.pids.get(scenario)
        cpu_before = cpu_seconds(pid) if pid is not None else 0.0
        try:
            result = block.load(scenario, connections, seconds)
            if pid is not None:
                cell.cpu_us.setdefault(scenario, []).append(
                    1e6 * (cpu_seconds(pid) - cpu_before) / max(result.requests, 1))
        except WrkOutputError as exc:
            cell.errors.append(f"{scenario}: {exc}")
            result = None
        finally:
            if scenario == "pg":
                env.start_redis()
                block.pin_backends()
                _wait_redirect_healthy(REDIRECT_PORT)
        if result is not None:
            _record(cell, counter, env, scenario, result, baseline, redis_before)
        if scenario == "pg":
            # The outage leaves the Redis breaker of the loaded processes open (its trial
            # then sends one lookup to Redis and the rest to Postgres): an unmeasured
            # second of load, after this scenario's events are counted, lets it close, as
            # at the block's start, so that the next round's Redis figures are the steady
            # state, not the recovery from the outage this scenario made.
            with contextlib.suppress(WrkOutputError):
                block.load("distinct", connections, 1)


def _record(cell: Cell, counter: TopicCounter, env: BenchEnv, scenario: str,
            result: WrkResult, baseline: int, redis_before: tuple[int, int] | None) -> None:
    cell.loads.setdefault(scenario, []).append(result)
    if scenario in LINKHOP:
        events = counter.settle(baseline, result.answered_ok)
        cell.events.setdefault(scenario, []).append(events)
    redis_after = _redis_counts(env.redis_port)
    if scenario in ("hot", "distinct") and redis_before and redis_after:
        requests = max(result.requests, 1)
        cell.redis_cmds.setdefault(scenario, []).append(
            (redis_after[0] - redis_before[0]) / requests)
        cell.redis_keys.setdefault(scenario, []).append(
            (redis_after[1] - redis_before[1]) / requests)


def _profile(block: _Block, results: RedirectResults, seconds: int, var: Path) -> None:
    """py-spy on the first redirect worker during a hot and a distinct load (unmeasured)."""
    pids = {"hot": block.cached[0].pid}
    started_nocache = [s for s in block.started if "nocache" in s.label]
    pids["distinct"] = started_nocache[0].pid if started_nocache else block.cached[0].pid
    for scenario, pid in pids.items():
        def load(scenario: str = scenario) -> None:
            with contextlib.suppress(WrkOutputError):
                block.load(scenario, 64, seconds + 1)

        raw = profile.record_during(pid, seconds, var / f"profile-{scenario}.txt", load)
        if raw is not None:
            results.profiles[scenario] = raw


def run(env: BenchEnv, seed: Seed, cfg: BenchConfig, deadline: float) -> RedirectResults:
    results = RedirectResults()
    topic = env.topic("redirect-clicks")
    script = env.var / "paths.lua"
    script.write_text(cycling_paths_script(seed.paths))
    cpus = sorted(os.sched_getaffinity(0))
    counter = TopicCounter(env.kafka_bootstrap, topic)
    try:
        for workers in cfg.workers:
            plan = servers.cpu_plan(workers, cpus)
            results.plans[workers] = plan.describe()
            block = _Block(env, seed, cfg, workers, topic, script, plan)
            try:
                if workers == cfg.workers[0]:
                    results.cache_note = _cache_note(block.distinct_port != REDIRECT_PORT)
                for scenario in ("nginx", "bare", "hot", "distinct"):  # warm-up, not counted
                    with contextlib.suppress(WrkOutputError):
                        block.load(scenario, 64, 1)
                for connections in cfg.connections:
                    cell = results.cells.setdefault((workers, connections), Cell())
                    for _ in range(cfg.runs):
                        if time.monotonic() > deadline:
                            cell.errors.append("stopped early: the time budget ran out")
                            break
                        _round(block, cell, counter, connections, cfg.seconds, env)
                if workers == 1 and cfg.profile:
                    _profile(block, results, cfg.seconds, env.var)
            finally:
                block.stop()
    finally:
        counter.close()
    return results


def _cache_note(separate: bool) -> str:
    if not separate:
        return "the same redirect processes (no setting to turn the in-process cache off)"
    settings = ", ".join(f"{k}={v}" for k, v in no_cache_env().items())
    return f"separate redirect processes with a one-entry in-process cache ({settings})"


def _ratio_text(cell: Cell, scenario: str, reference: str) -> float:
    return median_ratio(cell.rps(scenario), cell.rps(reference))


def render(results: RedirectResults, seed: Seed, cfg: BenchConfig, report: Report) -> None:
    rows: list[list[str]] = []
    for (workers, connections), cell in sorted(results.cells.items()):
        for scenario, label in SCENARIOS.items():
            loads = cell.loads.get(scenario, [])
            if not loads:
                rows.append([str(workers), str(connections), label] + ["—"] * 7)
                continue
            events = cell.events.get(scenario)
            answered = sum(r.answered_ok for r in loads)
            errors = sum(r.non_3xx + r.socket_errors for r in loads)
            rows.append([
                str(workers), str(connections), label,
                fmt(median([r.rps for r in loads])),
                fmt(median([r.p50_ms for r in loads]), 2),
                fmt(median([r.p99_ms for r in loads]), 2),
                pct(_ratio_text(cell, scenario, "nginx")) if scenario in LINKHOP else "",
                pct(_ratio_text(cell, scenario, "bare")) if scenario in LINKHOP else "",
                f"{sum(events):,} / {answered:,}" if events is not None else "",
                f"{errors:,}",
            ])
    notes = [
        f"wrk -t1 -d{cfg.seconds}s --latency, {cfg.runs} round(s) per block; each figure is "
        "the median over the rounds; each ratio is taken inside one round (then the median).",
        f"Links: {seed.how}. Distinct-slug loads cycle through {len(seed.paths):,} paths "
        f"with a wrk Lua script; they ran on {results.cache_note}.",
        "The Redis-stopped loads stop the benchmark's private Redis (after a SAVE) for the "
        "load and start it again after, inside each round, followed by one unmeasured "
        "second of the distinct-slug load (the Redis breaker the outage opened closes "
        "again), so the next round's Redis figures are not the outage's recovery.",
        "The private Redis and the Kafka broker are pinned to wrk's cores, never to a server "
        "worker's own core (on a deployment they are other machines; the references use "
        "neither).",
        "`events / answered`: click events that reached the Kafka topic (end offsets before "
        "and after, waited for up to 10 s) against the 2xx/3xx answers wrk counted; "
        "`errors`: non-2xx/3xx answers plus socket errors.",
    ]
    notes += [f"{w} worker(s): {plan}" for w, plan in sorted(results.plans.items())]
    redis_notes = []
    for (workers, connections), cell in sorted(results.cells.items()):
        for scenario in ("hot", "distinct"):
            values, keys = cell.redis_cmds.get(scenario), cell.redis_keys.get(scenario)
            if values and keys:
                redis_notes.append(
                    f"{workers} worker(s), {connections} conns, {scenario}: per request, "
                    f"{median(values):.3f} Redis commands and {median(keys):.2f} keys read "
                    "(INFO stats of the private Redis; one MGET carries many lookups)")
        for error in cell.errors:
            redis_notes.append(f"{workers} worker(s), {connections} conns: {error}")
    body = table(["workers", "conns", "scenario", "req/s", "p50 ms", "p99 ms", "vs nginx",
                  "vs bare aiohttp", "events / answered", "errors"], rows)
    body += "\n\n" + "\n".join(f"- {n}" for n in notes + redis_notes)
    budget = results.cells.get((1, BUDGET_CONNECTIONS))
    if budget is not None and budget.cpu_us:
        body += "\n\n" + _budget(budget)
    report.section("Redirect", body)
    _targets(results, report)


def _budget(cell: Cell) -> str:
    """Where one worker's CPU per request goes, against what the two ratio targets leave
    (a ratio of requests per second is, on a saturated core, the inverse ratio of CPU
    time per request)."""
    cpu = {s: median(v) for s, v in cell.cpu_us.items() if v}
    rows = []
    for scenario, label in BUDGET_ROWS.items():
        if scenario not in cpu:
            continue
        rows.append([label, fmt(median(cell.rps(scenario))), fmt(cpu[scenario], 1),
                     pct(_ratio_text(cell, scenario, "bare")) if scenario != "bare" else ""])
    text = ("### Where the worker's CPU goes (1 worker, 64 conns)\n\n"
            + table(["scenario", "req/s", "CPU us per request", "vs bare aiohttp"], rows))
    lines = ["CPU: the loaded process's user + system time (`/proc/PID/stat`, all its "
             "threads: the Kafka client, the spool's writer threads) over the requests wrk "
             "counted, median of the rounds. The quiet servers (`python -m "
             "bench.quiet_redirect`) are the same service with every click event dropped at "
             "the queue, each loaded right after the scenario it mirrors."]
    bare = cpu.get("bare")
    if bare:
        lines.append(
            f"What the targets leave: >= 90 % of bare aiohttp is at most {bare / 0.90:.1f} us "
            f"per request, {bare / 0.90 - bare:.1f} us more than bare aiohttp's {bare:.1f} "
            f"us; >= 60 % is at most {bare / 0.60:.1f} us.")
    for scenario in ("hot", "distinct"):
        quiet = f"{scenario}_quiet"
        if scenario in cpu and quiet in cpu and bare:
            lines.append(
                f"{scenario}: {cpu[scenario] - bare:.1f} us per request more than bare "
                f"aiohttp, of which producing the click event to Kafka (encoding, batching, "
                f"the Kafka client, acknowledgements) {cpu[scenario] - cpu[quiet]:.1f} us.")
    return text + "\n\n" + "\n".join(f"- {line}" for line in lines)


def _targets(results: RedirectResults, report: Report) -> None:
    cell = results.cells.get((1, 64))
    if cell is None:
        return
    hot = _ratio_text(cell, "hot", "bare")
    distinct = _ratio_text(cell, "distinct", "bare")
    report.target("#4", "hot link vs bare aiohttp (1 worker, 64 conns)", ">= 90 %", pct(hot),
                  at_least(hot, 0.90))
    report.target("#4", "distinct slugs (Redis) vs bare aiohttp (1 worker, 64 conns)",
                  ">= 60 %", pct(distinct), at_least(distinct, 0.60))
    for scenario in ("hot", "distinct"):
        p99 = median([r.p99_ms for r in cell.loads.get(scenario, [])])
        report.target("#4", f"p99, {scenario} (1 worker, 64 conns)", "< 10 ms",
                      fmt(p99, 2, " ms"), at_most(p99, 10.0))
    two = results.cells.get((2, 64))
    if two is not None:
        growth = median(two.rps("hot")) / median(cell.rps("hot")) if cell.rps("hot") else math.nan
        report.target("#4", "2 workers vs 1, hot link req/s (64 conns; different rounds)",
                      "> 1.0x", fmt(growth, 2, "x"), at_least(growth, 1.0001))
    missed = {"hot": not at_least(hot, 0.90).passed,
              "distinct": not at_least(distinct, 0.60).passed}
    for scenario, raw in results.profiles.items():
        if missed.get(scenario):
            report.profiles.append((f"redirect, {SCENARIOS[scenario]}", profile.markdown(
                raw, "the first redirect worker during a 64-connection load")))
