"""What the fault tests share: the services as real processes on the faults stack, a
steady bounded load of redirects, and the click accounting by event id.

Everything here talks to the *faults* instance of the local stack (ports +100, its own
``var/stack-faults``), never to the shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from deploy.local import processes, stack

SERVICE_START_TIMEOUT_S = 40.0
FAULTS_INSTANCE = "faults"


@dataclass(frozen=True)
class FaultStack:
    """The faults instance: its paths (to stop and start servers) and URLs."""

    paths: stack.StackPaths
    database_url: str
    redis_url: str
    kafka_bootstrap: str

    def env(self) -> dict[str, str]:
        return {
            "LINKHOP_DATABASE_URL": self.database_url,
            "LINKHOP_REDIS_URL": self.redis_url,
            "LINKHOP_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
        }


# --------------------------------------------------------------------------------------
# CPU isolation.


@dataclass(frozen=True)
class CpuSplit:
    """Two disjoint sets of this process's cores: ``edge`` for the redirect service and
    the load generator, ``backend`` for the Kafka broker (and the helper processes that
    start and stop it), the stats consumer, PostgreSQL and Redis. In production those
    run on other machines than the redirect edge; on one small machine this keeps a
    starting JVM, or the consumer's writes, from taking the edge's core
    (docs/reliability.md)."""

    edge: frozenset[int]
    backend: frozenset[int]


def cpu_split() -> CpuSplit | None:
    """The first half of the cores for the edge, the rest for the backend; None with
    fewer than two cores (nothing to isolate)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return CpuSplit(edge=frozenset(cpus[:half]), backend=frozenset(cpus[half:]))


def pin(pid: int, cpus: frozenset[int]) -> None:
    """Every thread of ``pid`` and of its descendants to ``cpus``; threads and children
    created later inherit the affinity of their creator."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat[stat.rfind(")") + 2:].split()[1]), []).append(
                    int(entry))
    todo = [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        with contextlib.suppress(FileNotFoundError):
            for tid in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(int(tid), cpus)


@contextlib.contextmanager
def thread_pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """The calling thread (the test's event loop, hence the load generator) on ``cpus``
    for the duration of the block, then back to its own affinity."""
    if cpus is None:
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


@contextlib.contextmanager
def frozen_heap() -> Iterator[list[float]]:
    """This process's heap collected, then frozen for the block; the collector's pauses
    meanwhile (seconds each) in the list yielded.

    The load generator runs in the pytest process, which holds every collected test
    module: a full collection there walks all of it, tens of milliseconds during which
    every request in flight looks slow, though the service answered it at once. Frozen,
    the collector only walks what the block itself makes. The list's first entry is
    the full collection made before the block: what such a pause costs here."""
    pauses: list[float] = []
    started = 0.0

    def timed(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started)

    started = time.perf_counter()
    gc.collect()
    pauses.append(time.perf_counter() - started)  # [0]: the full collection before
    gc.freeze()
    gc.callbacks.append(timed)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(timed)
        gc.unfreeze()


def pin_servers(fault_stack: FaultStack, cpus: frozenset[int]) -> None:
    """The faults instance's servers (PostgreSQL with its backends, Redis, Kafka), and
    the shared instance's when they run (``make test`` runs both): an idle broker still
    wakes its threads every few milliseconds, wherever the scheduler puts them."""
    shared = stack.StackPaths(fault_stack.paths.root)
    for paths in (fault_stack.paths, shared):
        for pid in stack.server_pids(paths).values():
            if pid is not None:
                pin(pid, cpus)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _busy_seconds(cpus: frozenset[int]) -> float:
    """CPU time used on ``cpus`` since boot, by anything (``/proc/stat``)."""
    ticks = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, values[:8])
            ticks += user + nice + system + irq + softirq + steal
    return ticks / _CLOCK_TICKS


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU time used on some cores: by anything, and by the processes or threads that
    are supposed to be alone there."""

    at: float
    busy: float
    own: float

    @classmethod
    def take(cls, cpus: frozenset[int], own: Sequence[Path]) -> CpuSnapshot:
        return cls(time.monotonic(), _busy_seconds(cpus),
                   sum(processes.cpu_seconds(stat_file) for stat_file in own))

    def foreign_share(self, later: CpuSnapshot, cpus: frozenset[int]) -> float:
        """The share of the cores' capacity used by anything else, from here to ``later``."""
        foreign = (later.busy - self.busy) - (later.own - self.own)
        return max(0.0, foreign) / ((later.at - self.at) * len(cpus))


@dataclass
class Service:
    """``python -m services.NAME`` on a free loopback port of its own (on ``cpus``, if
    given)."""

    fault_stack: FaultStack
    name: str
    extra_env: Mapping[str, str] = field(default_factory=dict)
    cpus: frozenset[int] | None = None
    port: int = 0
    label: str = ""
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.label = f"{self.name}-{uuid.uuid4().hex[:8]}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.fault_stack.paths.var / "log" / f"{self.label}.log"

    def start(self, *, wait: bool = True) -> None:
        if not self.port:
            self.port = processes.free_port()
        env = {
            **self.fault_stack.env(),
            f"LINKHOP_{self.name.upper()}_PORT": str(self.port),
            "LINKHOP_LOG_LEVEL": "INFO",
            **self.extra_env,
        }
        self.process = processes.start_service(
            self.fault_stack.paths.var, self.name, env, instance=self.label
        )
        if self.cpus is not None:
            pin(self.process.pid, self.cpus)
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = SERVICE_START_TIMEOUT_S) -> None:
        try:
            processes.wait_healthy(self.url, timeout=timeout, process=self.process)
        except (RuntimeError, TimeoutError) as exc:
            self.stop(hard=True)  # no process (or pid file) is left behind
            raise AssertionError(f"{self.label} did not start: {exc}\n{self.log_tail()}") from exc

    def stop(self, *, hard: bool = False) -> None:
        processes.stop_service(self.fault_stack.paths.var, self.label, hard=hard, timeout=20)
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def kill(self) -> None:
        self.stop(hard=True)

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def loop_errors(self) -> list[str]:
        """Errors the event loop reported in the log (a callback that raised, an
        exception nobody retrieved, a task destroyed while pending): each is a bug,
        in our code or in how it drives a library, even when nothing was lost."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return []
        markers = ("Exception in callback", "exception was never retrieved",
                   "Task was destroyed but it is pending")
        return [line for line in text.splitlines() if any(m in line for m in markers)]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return f"(no log {self.log_file})"
        return "\n".join(text.splitlines()[-lines:])


async def kafka(fault_stack: FaultStack, action: stack.KafkaAction,
                cpus: frozenset[int] | None = None) -> None:
    """Starts, stops (SIGTERM) or kills (SIGKILL) the faults instance's broker, in a
    process of its own, on ``cpus`` if given (:func:`stack.kafka_command` says why)."""
    process = await asyncio.create_subprocess_exec(
        *stack.kafka_command(fault_stack.paths, action, sorted(cpus) if cpus else None),
        cwd=stack.repo_root(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    assert process.returncode == 0, f"kafka {action} failed:\n{output.decode(errors='replace')}"


# --------------------------------------------------------------------------------------
# Load.


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    # (monotonic time the request was sent, its latency), for a timeline of slow ones.
    samples: list[tuple[float, float]] = field(default_factory=list)
    # Requests answered with a redirect (each accepted one click event).
    redirected: int = 0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def quantile(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q * 100) - 1]

    def share_over(self, latency: float) -> float:
        """The share of the requests slower than ``latency``."""
        return sum(1 for x in self.latencies if x > latency) / max(1, len(self.latencies))

    def slowest(self, count: int, since: float) -> str:
        """The ``count`` slowest requests: when they were sent (s after ``since``), ms."""
        worst = sorted(self.samples, key=lambda sample: -sample[1])[:count]
        return ", ".join(f"{sent - since:.1f}s:{latency * 1000:.0f}ms"
                         for sent, latency in sorted(worst))

    def summary(self) -> str:
        return (f"sent={self.sent} statuses={dict(self.statuses)} errors={dict(self.errors)} "
                f"p50={self.quantile(0.5) * 1000:.1f}ms p99={self.quantile(0.99) * 1000:.1f}ms")


REDIRECT_STATUSES = frozenset({301, 302, 307, 308})


async def steady_load(
    base_url: str,
    host: str,
    path: str,
    *,
    requests: int,
    rate: float,
    concurrency: int = 8,
    timeout: float = 5.0,
    until: asyncio.Event | None = None,
) -> LoadResult:
    """``requests`` GETs at ``rate`` per second (paced, at most ``concurrency`` in flight);
    fewer if ``until`` is set before they are all sent."""
    result = LoadResult()
    limit = asyncio.Semaphore(concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(timeout=client_timeout, connector=connector) as session:

        async def one() -> None:
            async with limit:
                started = time.monotonic()
                try:
                    async with session.get(f"{base_url}/{path}", headers={"Host": host},
                                           allow_redirects=False) as answer:
                        await answer.read()
                        result.statuses[answer.status] += 1
                        if answer.status in REDIRECT_STATUSES:
                            result.redirected += 1
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    result.errors[type(exc).__name__] += 1
                    return
                latency = time.monotonic() - started
                result.latencies.append(latency)
                result.samples.append((started, latency))

        tasks = []
        start = time.monotonic()
        for i in range(requests):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if until is not None and until.is_set():
                break
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return result


# --------------------------------------------------------------------------------------
# Accounting: events the redirect service accepted vs. clicks counted, by event id.


@dataclass(frozen=True)
class Accounting:
    accepted: int  # redirects answered (one event each)
    on_topic: int  # messages on the topic (duplicates allowed: at-least-once delivery)
    topic_ids: frozenset[str]  # distinct event ids on the topic
    counted_ids: frozenset[str]  # event ids in the stats raw click table
    rollup_clicks: int  # the link's clicks in the hourly rollups

    @property
    def lost(self) -> int:
        return len(self.topic_ids - self.counted_ids) + max(0, self.accepted - len(self.topic_ids))

    @property
    def doubled(self) -> int:
        return self.rollup_clicks - len(self.counted_ids)

    def exact(self) -> bool:
        return (
            self.accepted == len(self.topic_ids) == len(self.counted_ids) == self.rollup_clicks
            and self.topic_ids == self.counted_ids
        )

    def summary(self) -> str:
        return (f"accepted={self.accepted} on_topic={self.on_topic} "
                f"distinct_on_topic={len(self.topic_ids)} counted={len(self.counted_ids)} "
                f"rollup={self.rollup_clicks} lost={self.lost} doubled={self.doubled}")


async def topic_event_ids(bootstrap: str, topic: str) -> tuple[int, frozenset[str]]:
    """Every message of ``topic`` (read to its end): (message count, distinct event ids)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = sorted(p["partition"] for p in described["partitions"])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in partitions]
        if not assigned:
            return 0, frozenset()
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        count = 0
        ids: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in assigned]
            if all(pos >= ends[tp] for pos, tp in zip(positions, assigned, strict=True)):
                break
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    count += 1
                    ids.add(str(json.loads(record.value)["event_id"]))
        return count, frozenset(ids)
    finally:
        await consumer.stop()


async def delete_topics(bootstrap: str, chosen: Callable[[str], bool]) -> None:
    """Deletes the topics ``chosen`` picks (best effort: a broker that is down keeps them
    until the next session's clean-up)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        await admin.start()
        names = [name for name in await admin.list_topics() if chosen(name)]
        if names:
            await admin.delete_topics(names, timeout_ms=10000)
    except KafkaError as exc:
        print(f"(topics not deleted: {exc!r})")
    finally:
        await admin.close()


async def counted(database_url: str, link_id: int) -> tuple[frozenset[str], int]:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await conn.fetch("SELECT event_id FROM stats_clicks WHERE link_id = $1", link_id)
        rollup = await conn.fetchval(
            "SELECT coalesce(sum(clicks), 0) FROM stats_link_hourly WHERE link_id = $1", link_id
        )
    finally:
        await conn.close()
    return frozenset(str(r["event_id"]) for r in rows), int(rollup)


async def settle_accounting(
    fault_stack: FaultStack, topic: str, link_id: int, accepted: int, *, timeout: float = 60.0
) -> Accounting:
    """Waits (bounded) until the stats service has counted ``accepted`` clicks and stays
    there a moment (so a late double would show), then reads the topic."""
    deadline = time.monotonic() + timeout
    ids, rollup = await counted(fault_stack.database_url, link_id)
    while (len(ids) < accepted or rollup < accepted) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        ids, rollup = await counted(fault_stack.database_url, link_id)
    await asyncio.sleep(1.0)  # a double counted late would show now
    ids, rollup = await counted(fault_stack.database_url, link_id)
    on_topic, topic_ids = await topic_event_ids(fault_stack.kafka_bootstrap, topic)
    return Accounting(accepted, on_topic, topic_ids, ids, rollup)


async def metric(base_url: str, name: str, session: aiohttp.ClientSession | None = None
                 ) -> float:
    """One unlabelled sample of the redirect service's ``/metrics`` (through ``session``
    if given: a poll under measured load then costs no new session and connection)."""
    async with contextlib.AsyncExitStack() as scope:
        if session is None:
            session = await scope.enter_async_context(aiohttp.ClientSession())
        async with session.get(f"{base_url}/metrics") as answer:
            text = await answer.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported:\n{text}")
