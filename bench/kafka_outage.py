"""Section: the edge while its Kafka broker is stopped and started again (issue 7: every
visitor redirected, "p99 within twice its normal figure", every click delivered later).

One redirect worker on the first worker core, producing to a broker of its own: a
private instance of the local stack (``bench-kafka``, ports +200), pinned to wrk's core
like the shared broker, so that stopping it disturbs nobody else. The load is the
redirect section's hot link at 64 connections (wrk on the other core). Each round is a
normal load, then a longer one during which the broker gets SIGTERM, stays down
``DOWN_S`` and is started again: the worker spools its events meanwhile, reconnects and
replays the spool. The two p99s are compared inside the round.

The fault tests (``tests/faults/test_kafka_faults.py``) check the same outage at a
steady rate, and count the delivered events one by one by event id; this section
measures the latency under the benchmark's load (the brief: speed targets by
benchmarks, not by timed tests) and counts what reached the topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench import servers
from bench.config import BenchConfig
from bench.environment import REDIRECT_PORT, BenchEnv, delete_topic
from bench.fixtures import Seed
from bench.kafka_count import TopicCounter
from bench.numbers import at_most, median, none, ratio
from bench.report import Report, fmt, table
from bench.wrk import WrkOutputError, WrkResult, run_wrk, wrk_command
from deploy.local import processes, stack
from shared.kafka_admin import ensure_topics

log = logging.getLogger("bench")

INSTANCE = "bench-kafka"
PORT_OFFSET = 200  # 19292/19293: clear of the shared (+0) and faults (+100) brokers
PORT = REDIRECT_PORT + 6
STOP_AT_S = 2.0  # into the outage load
DOWN_S = 2.0  # from the broker's exit to the start command
# The outage load lasts long enough for the broker's restart (a JVM: 5 to 10 s here),
# the worker's reconnect (``kafka_retry_interval``, 2 s) and most of the replay.
OUTAGE_LOAD_S = 20
NORMAL_LOAD_S = 10
BROKER_TIMEOUT_S = 120.0
# After the outage load: how long the spool may take to reach the topic.
DELIVERY_TIMEOUT_S = 60.0
_METRIC = re.compile(r"^(linkhop_click_events_\w+_total) (\d+)", re.M)


@dataclass
class OutageRound:
    normal: WrkResult
    outage: WrkResult
    stop_s: float  # the SIGTERM until the broker exited
    restart_s: float  # the start command until the broker was ready
    events: int  # events on the topic during both loads, once the spool was replayed
    counters: dict[str, int]  # the worker's event counters during the outage load

    @property
    def p99_ratio(self) -> float:
        return ratio(self.outage.p99_ms, self.normal.p99_ms)

    @property
    def answered(self) -> int:
        return self.normal.answered_ok + self.outage.answered_ok

    @property
    def errors(self) -> int:
        return sum(r.non_3xx + r.socket_errors for r in (self.normal, self.outage))


@dataclass
class OutageResults:
    rounds: list[OutageRound] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    plan: str = ""


def broker_paths(env: BenchEnv) -> stack.StackPaths:
    return stack.StackPaths(env.paths.root, instance=INSTANCE, port_offset=PORT_OFFSET)


def _broker(paths: stack.StackPaths, action: stack.KafkaAction, cores: list[int]) -> float:
    """Runs a broker action in its own process on ``cores``; the seconds it took."""
    began = time.monotonic()
    done = subprocess.run(stack.kafka_command(paths, action, cores), cwd=paths.root,
                          capture_output=True, text=True, timeout=BROKER_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"kafka-{action} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - began


def _counters(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {name.removeprefix("linkhop_click_events_").removesuffix("_total"): int(value)
            for name, value in _METRIC.findall(text)}


class _Outage(threading.Thread):
    """Stops the broker ``STOP_AT_S`` into the load and starts it ``DOWN_S`` later."""

    def __init__(self, paths: stack.StackPaths, cores: list[int]) -> None:
        super().__init__(name="kafka-outage", daemon=True)
        self.paths, self.cores = paths, cores
        self.stop_s = self.restart_s = float("nan")
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            time.sleep(STOP_AT_S)
            self.stop_s = _broker(self.paths, "stop", self.cores)
            time.sleep(DOWN_S)
            self.restart_s = _broker(self.paths, "start", self.cores)
        except Exception as exc:  # reported with the round
            self.error = exc


def _hot_load(seed: Seed, plan: servers.CpuPlan, seconds: float) -> WrkResult:
    cmd = wrk_command(f"http://127.0.0.1:{PORT}/{seed.hot_path}", connections=64,
                      seconds=seconds, host=seed.hostname, cores=plan.load)
    return run_wrk(cmd, timeout=seconds + 30)


def _round(paths: stack.StackPaths, seed: Seed, plan: servers.CpuPlan, topic: str
           ) -> OutageRound:
    with _counting(paths, topic) as counter:
        baseline = counter.total()
    normal = _hot_load(seed, plan, NORMAL_LOAD_S)
    before = _counters(PORT)
    outage = _Outage(paths, plan.load)
    outage.start()
    try:
        result = _hot_load(seed, plan, OUTAGE_LOAD_S)
    finally:
        outage.join(BROKER_TIMEOUT_S * 2)
    if outage.error is not None:
        raise outage.error
    # The broker is back: the worker reconnects and replays its spool; wait for the topic.
    with _counting(paths, topic) as counter:
        events = counter.settle(baseline, normal.answered_ok + result.answered_ok,
                                timeout=DELIVERY_TIMEOUT_S, quiet=5.0)
    after = _counters(PORT)
    return OutageRound(normal, result, outage.stop_s, outage.restart_s, events,
                       {k: after.get(k, 0) - before.get(k, 0) for k in after})


@contextlib.contextmanager
def _counting(paths: stack.StackPaths, topic: str) -> Iterator[TopicCounter]:
    """A counter of the private broker's topic, closed again (the broker restarts)."""
    counter = TopicCounter(paths.kafka_bootstrap, topic)
    try:
        yield counter
    finally:
        counter.close()


def run(env: BenchEnv, seed: Seed, cfg: BenchConfig, deadline: float) -> OutageResults:
    results = OutageResults()
    plan = servers.cpu_plan(1, sorted(os.sched_getaffinity(0)))
    results.plan = plan.describe()
    paths = broker_paths(env)
    _broker(paths, "start", plan.load)
    try:
        topic = f"bench-outage-{env.stamp}"
        asyncio.run(ensure_topics(paths.kafka_bootstrap, [topic]))
        service_env = env.service_env(
            LINKHOP_REDIRECT_PORT=str(PORT), LINKHOP_CLICKS_TOPIC=topic,
            LINKHOP_KAFKA_BOOTSTRAP=paths.kafka_bootstrap,
            LINKHOP_REDIRECT_SECRET=f"bench-{env.stamp}",
            LINKHOP_REDIRECT_SPOOL_DIR=str(env.var / "spool" / "outage"))
        worker = servers.start_linkhop(env.var, "redirect", "bench-redirect-outage",
                                       service_env, plan.workers[0])
        try:
            processes.wait_healthy(f"http://127.0.0.1:{PORT}", process=worker.process)
            with contextlib.suppress(WrkOutputError):  # warm-up, not counted
                _hot_load(seed, plan, 1)
            for _ in range(cfg.runs):
                if time.monotonic() > deadline:
                    results.errors.append("stopped early: the time budget ran out")
                    break
                try:
                    results.rounds.append(_round(paths, seed, plan, topic))
                except (WrkOutputError, RuntimeError, OSError) as exc:
                    results.errors.append(f"{type(exc).__name__}: {exc}")
                    _broker(paths, "start", plan.load)  # the next round needs it
        finally:
            worker.stop()
            # This run's events are counted: the broker's data stays small across runs.
            with contextlib.suppress(Exception):  # a broker left down by a failed round
                asyncio.run(delete_topic(paths.kafka_bootstrap, topic))
    finally:
        _broker(paths, "stop", plan.load)
    return results


def render(results: OutageResults, report: Report) -> None:
    rows = []
    for i, r in enumerate(results.rounds):
        c = r.counters
        rows.append([
            str(i), fmt(r.normal.rps), fmt(r.normal.p99_ms, 2), fmt(r.outage.rps),
            fmt(r.outage.p99_ms, 2), fmt(r.p99_ratio, 2, "x"),
            f"{r.stop_s:.1f} / {r.restart_s:.1f}",
            f"{c.get('sent', 0):,} / {c.get('spooled', 0):,} / {c.get('replayed', 0):,} / "
            f"{c.get('dropped', 0):,}",
            f"{r.events:,} / {r.answered:,}", f"{r.errors:,}",
        ])
    notes = [
        f"1 worker, 64 connections, the hot link; {results.plan}. Per round: a normal load "
        f"of {NORMAL_LOAD_S} s, then a load of {OUTAGE_LOAD_S} s during which the "
        f"broker (a private instance, `{INSTANCE}`, on wrk's core) gets SIGTERM at "
        f"{STOP_AT_S:.0f} s, and {DOWN_S:.0f} s after its exit is started again.",
        "`stop / restart s`: the SIGTERM until the broker exited; the start command until "
        "it answered metadata with a leader for every partition.",
        "`sent / spooled / replayed / dropped`: the worker's click-event counters during "
        "the outage load and the replay after it (`/metrics`); `events / answered`: "
        "events that reached the topic during both loads (end offsets, waited for the "
        f"replay up to {DELIVERY_TIMEOUT_S:.0f} s) against the redirects wrk counted. "
        "More events than answers are batches spooled after the ack bound and "
        "acknowledged late: delivered twice, and dropped by the stats consumer by event "
        "id (the fault tests count by event id: none lost, none doubled).",
    ]
    notes += results.errors
    body = table(["round", "normal req/s", "normal p99 ms", "outage req/s", "outage p99 ms",
                  "p99 ratio", "stop / restart s", "sent / spooled / replayed / dropped",
                  "events / answered", "errors"], rows)
    body += "\n\n" + "\n".join(f"- {n}" for n in notes)
    report.section("Kafka stopped and started under load", body)
    if results.rounds:
        typical = median([r.p99_ratio for r in results.rounds])
        report.target("#7", "p99 while Kafka is stopped and started, vs normal (hot link, "
                      "1 worker, 64 conns; median of the rounds' ratios)", "<= 2.0x",
                      fmt(typical, 2, "x"), at_most(typical, 2.0))
        lost = sum(max(0, r.answered - r.events) for r in results.rounds)
        errors = sum(r.errors for r in results.rounds)
        report.target("#7", "during those outages: answers that were not redirects; "
                      "redirects without an event on the topic", "0; 0",
                      f"{errors:,}; {lost:,}", none(errors + lost))
