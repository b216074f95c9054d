"""The local stack: real PostgreSQL, Redis and Apache Kafka (KRaft) as plain processes.

Everything lives under ``<repo>/var`` (gitignored): data, logs, pid files and config.
The servers listen on loopback only, on the ports in :mod:`shared.settings` (15432, 16379,
19092/19093), so they never collide with a server someone already runs on the machine.

Public API (used by ``python -m deploy.local.stack`` and by the pytest fixtures):

* :func:`ensure_installed`: apt-get installs PostgreSQL/Redis (and Java/Maven) when missing,
  Maven fetches the Kafka jars into ``var/kafka/libs`` when missing.
* :func:`start` / :func:`stop` / :func:`status`: the whole stack. ``start`` is idempotent:
  what already runs is reused, and it only returns once every server really answers.
* :func:`start_postgres` / :func:`stop_postgres`, :func:`start_redis` / :func:`stop_redis`,
  :func:`start_kafka` / :func:`stop_kafka`: one component at a time, for fault tests.
* :func:`ensure_database`: a (test) database by name, created when missing.
* :func:`external_urls`: the servers named by ``LINKHOP_DATABASE_URL`` /
  ``LINKHOP_REDIS_URL`` / ``LINKHOP_KAFKA_BOOTSTRAP``; ``start`` starts nothing local for
  those that are set.

A second, independent instance (``StackPaths(root, instance="faults")``: its own
``var/stack-faults``, ports +100, so 15532, 16479, 19192/19193) lets the fault tests stop
and kill servers without touching the shared stack; only the Kafka jars are shared.

Every call that changes something holds an exclusive ``flock`` on ``var/stack.lock``, so
several pytest processes and CLI calls may run at once. Servers found listening on the
stack's ports that are the right kind of server (say, the stack of another checkout of
this repo on the same machine) are adopted rather than fought with.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from deploy.local.processes import pid_alive
from shared.settings import (
    CLICKS_TOPIC,
    DEFAULT_DATABASE_URL,
    DEFAULT_KAFKA_BOOTSTRAP,
    DEFAULT_REDIS_URL,
    LOCAL_KAFKA_CONTROLLER_PORT,
    LOCAL_KAFKA_PORT,
    LOCAL_POSTGRES_PORT,
    LOCAL_REDIS_PORT,
)

log = logging.getLogger("linkhop.stack")

T = TypeVar("T")

HOST = "127.0.0.1"
DATABASE_ENV = "LINKHOP_DATABASE_URL"
REDIS_ENV = "LINKHOP_REDIS_URL"
KAFKA_ENV = "LINKHOP_KAFKA_BOOTSTRAP"

PG_SUPERUSER = "linkhop"
PG_FALLBACK_SYSTEM_USER = "linkhop-pg"
PG_START_TIMEOUT_S = 60
KAFKA_READY_TIMEOUT_S = 90.0
KAFKA_STOP_TIMEOUT_S = 20.0
REDIS_READY_TIMEOUT_S = 20.0
CLICKS_PARTITIONS = 4
# A development and test broker on a 2-core machine, restarted often (the fault tests
# stop and kill it several times a run) while the services run on the same cores. Its
# start is what costs: with the JVM's defaults (G1, C1 then C2 compilers) a start took
# 5.3 to 6.1 s of CPU, and the JIT competed with the services for both cores (visitor
# p99 up to 148 ms while it started, docs/reliability.md). Options that make it cheap:
# the C1 compiler only (TieredStopAtLevel=1) with one compiler thread, the serial GC (no
# parallel or concurrent GC threads; the heap is small), no hsperfdata file. Measured on
# the faults instance: a start takes 2.4 to 2.9 s of CPU, ready in 1.9 to 4.7 s instead
# of 3.5 to 9.0, and producing 200,000 events took the same time (5.0 s against 4.9 s; the
# Python producer is the bottleneck) for less broker CPU (0.9 s against 1.6 s: no C2
# compilation). A long-running production broker wants the defaults; this one never is.
KAFKA_JVM_OPTS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:CICompilerCount=1",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
KAFKA_MAIN_JAR_GLOB = "kafka_2.13-*.jar"
APT_PACKAGES_POSTGRES = ("postgresql",)
APT_PACKAGES_REDIS = ("redis-server",)
APT_PACKAGES_JAVA = ("default-jre-headless",)
APT_PACKAGES_MAVEN = ("maven",)
_DB_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,62}$")
_TOPIC_ALREADY_EXISTS = 36
_INSTANCE_RE = re.compile(r"^[a-z0-9][a-z0-9\-]{0,30}$")
INSTANCE_PORT_OFFSET = 100


class StackError(RuntimeError):
    """A component of the local stack could not be installed, started or stopped."""


@dataclass(frozen=True)
class StackPaths:
    """Where the local stack keeps its files, and the ports it listens on.

    The default instance (``instance=""``) lives under ``root/var`` on the ports of
    :mod:`shared.settings`. A named instance (``StackPaths(root, instance="faults")``) is a
    second, fully independent stack under ``root/var/stack-<instance>`` on the ports
    shifted by ``port_offset`` (default +100: 15532, 16479, 19192/19193), so the fault
    tests can stop and kill its servers while others use the shared ones. Only the Kafka
    jars (``var/kafka/libs``) are shared between instances. A named instance ignores the
    ``LINKHOP_*`` variables: it always runs its own servers.
    """

    root: Path
    instance: str = ""
    port_offset: int | None = None

    def __post_init__(self) -> None:
        if self.instance and not _INSTANCE_RE.match(self.instance):
            raise StackError(f"invalid stack instance name {self.instance!r}")

    @classmethod
    def default(cls) -> StackPaths:
        return cls(repo_root())

    @property
    def offset(self) -> int:
        """How far this instance's ports are from the default ones."""
        if self.port_offset is not None:
            return self.port_offset
        return INSTANCE_PORT_OFFSET if self.instance else 0

    @property
    def postgres_port(self) -> int:
        return LOCAL_POSTGRES_PORT + self.offset

    @property
    def redis_port(self) -> int:
        return LOCAL_REDIS_PORT + self.offset

    @property
    def kafka_port(self) -> int:
        return LOCAL_KAFKA_PORT + self.offset

    @property
    def kafka_controller_port(self) -> int:
        return LOCAL_KAFKA_CONTROLLER_PORT + self.offset

    @property
    def database_url(self) -> str:
        """The ``linkhop`` database of this instance."""
        if not self.offset:
            return DEFAULT_DATABASE_URL
        return f"postgresql://{PG_SUPERUSER}@{HOST}:{self.postgres_port}/linkhop"

    @property
    def redis_url(self) -> str:
        return DEFAULT_REDIS_URL if not self.offset else f"redis://{HOST}:{self.redis_port}/0"

    @property
    def kafka_bootstrap(self) -> str:
        return DEFAULT_KAFKA_BOOTSTRAP if not self.offset else f"{HOST}:{self.kafka_port}"

    @property
    def urls(self) -> StackUrls:
        return StackUrls(self.database_url, self.redis_url, self.kafka_bootstrap)

    @property
    def honours_env(self) -> bool:
        """Whether ``LINKHOP_*`` URLs replace this instance's servers (default one only)."""
        return not self.instance

    @property
    def var(self) -> Path:
        base = self.root / "var"
        return base / f"stack-{self.instance}" if self.instance else base

    @property
    def lock_file(self) -> Path:
        return self.var / "stack.lock"

    # PostgreSQL
    @property
    def pg_dir(self) -> Path:
        return self.var / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_run(self) -> Path:
        return self.pg_dir / "run"

    @property
    def pg_log_dir(self) -> Path:
        return self.pg_dir / "log"

    @property
    def pg_log(self) -> Path:
        return self.pg_log_dir / "postgresql.log"

    @property
    def pg_pid(self) -> Path:
        return self.pg_data / "postmaster.pid"

    # Redis
    @property
    def redis_dir(self) -> Path:
        return self.var / "redis"

    @property
    def redis_conf(self) -> Path:
        return self.redis_dir / "redis.conf"

    @property
    def redis_pid(self) -> Path:
        return self.redis_dir / "redis.pid"

    @property
    def redis_log(self) -> Path:
        return self.redis_dir / "redis.log"

    # Kafka
    @property
    def kafka_dir(self) -> Path:
        return self.var / "kafka"

    @property
    def kafka_libs(self) -> Path:
        # Shared by every instance: the jars are the same and cost a Maven run to fetch.
        return self.root / "var" / "kafka" / "libs"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_logs(self) -> Path:
        return self.kafka_dir / "logs"

    @property
    def kafka_properties(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_log4j(self) -> Path:
        return self.kafka_dir / "log4j.properties"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def kafka_cluster_id(self) -> Path:
        return self.kafka_dir / "cluster.id"

    @property
    def kafka_stdout(self) -> Path:
        return self.kafka_logs / "stdout.log"

    @property
    def kafka_pom(self) -> Path:
        return self.root / "deploy" / "local" / "kafka" / "pom.xml"


@dataclass(frozen=True)
class StackUrls:
    """How to reach the three servers."""

    database_url: str
    redis_url: str
    kafka_bootstrap: str


def repo_root() -> Path:
    """The directory holding ``pyproject.toml``: searched upwards from this file, then cwd."""
    for start_dir in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for candidate in (start_dir, *start_dir.parents):
            if (candidate / "pyproject.toml").is_file():
                return candidate
    raise StackError("cannot find the linkhop repository root (no pyproject.toml above)")


def _env_urls(paths: StackPaths) -> tuple[str | None, str | None, str | None]:
    """The ``LINKHOP_*`` URLs that replace this instance's servers (none for named ones)."""
    if not paths.honours_env:
        return None, None, None
    db, redis_url, kafka = (os.environ.get(name) for name in (DATABASE_ENV, REDIS_ENV, KAFKA_ENV))
    return db or None, redis_url or None, kafka or None


def external_urls() -> StackUrls | None:
    """The servers given by the environment, or ``None`` when no LINKHOP_* URL is set.

    When only some are set, the others are the local stack's defaults (and :func:`start`
    starts only those).
    """
    db, redis_url, kafka = (os.environ.get(name) for name in (DATABASE_ENV, REDIS_ENV, KAFKA_ENV))
    if not (db or redis_url or kafka):
        return None
    return StackUrls(
        database_url=db or DEFAULT_DATABASE_URL,
        redis_url=redis_url or DEFAULT_REDIS_URL,
        kafka_bootstrap=kafka or DEFAULT_KAFKA_BOOTSTRAP,
    )


# --------------------------------------------------------------------------------------
# Locking: one flock on var/stack.lock, re-entrant inside this process.

_THREAD_LOCK = threading.RLock()
_held_locks: dict[Path, tuple[int, int]] = {}  # lock file -> (fd, depth)


@contextlib.contextmanager
def _locked(paths: StackPaths) -> Iterator[None]:
    key = paths.lock_file.resolve()
    with _THREAD_LOCK:
        fd, depth = _held_locks.get(key, (-1, 0))
        if depth == 0:
            paths.var.mkdir(parents=True, exist_ok=True)
            fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)  # O_CLOEXEC: children never hold it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        _held_locks[key] = (fd, depth + 1)
        try:
            yield
        finally:
            if depth == 0:
                del _held_locks[key]
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            else:
                _held_locks[key] = (fd, depth)


# --------------------------------------------------------------------------------------
# Process and port helpers (Linux /proc).


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    return int(first) if first.isdigit() else None


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _listener_pids(port: int) -> list[int]:
    """PIDs of the processes holding a listening TCP socket on ``port`` (any address)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A = LISTEN
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return []
    targets = {f"socket:[{inode}]" for inode in inodes}
    found: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        found.append(int(proc.name))
                        break
        except OSError:
            continue
    return sorted(found)


def _find_pid(pid_file: Path, port: int, marker: str, *, remove_stale: bool) -> int | None:
    """The running server: from our pid file, else the ``marker`` process on ``port``."""
    pid = _read_pid(pid_file)
    if pid is not None:
        if pid_alive(pid) and marker in _cmdline(pid):
            return pid
        if remove_stale:
            log.info("removing stale pid file %s (pid %d is gone)", pid_file, pid)
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()
    for candidate in _listener_pids(port):
        if pid_alive(candidate) and marker in _cmdline(candidate):
            return candidate
    return None


def _foreign_listener(port: int) -> str | None:
    """A description of whatever non-stack process holds ``port``, if any."""
    pids = _listener_pids(port)
    if pids:
        return ", ".join(f"pid {p} ({_cmdline(p)[:120]})" for p in pids)
    if _port_open(port):
        return "an unknown process"
    return None


def _wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _terminate(pid: int, name: str, *, sig: signal.Signals, timeout: float) -> None:
    """Send ``sig``, wait up to ``timeout`` s, then SIGKILL; returns once ``pid`` is gone."""
    if not pid_alive(pid):
        return
    log.info("stopping %s (pid %d) with %s", name, pid, sig.name)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if _wait_until(lambda: not pid_alive(pid), timeout):
        return
    log.warning("%s (pid %d) did not stop in %.0f s: SIGKILL", name, pid, timeout)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_until(lambda: not pid_alive(pid), 10):
        raise StackError(f"{name} (pid {pid}) survived SIGKILL")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
    timeout: float | None = None,
    new_session: bool = False,
) -> str:
    """Run a command to completion; its output is returned, or shown in the error."""
    try:
        proc = subprocess.run(
            [os.fspath(c) for c in cmd],
            cwd=cwd,
            env=env,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=new_session,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        raise StackError(
            f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n{output}"
        )
    return proc.stdout


def _run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private loop in a helper thread.

    A thread keeps this usable from inside a running event loop (async tests) and leaves
    the caller thread's current event loop untouched.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(asyncio.run(factory()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="linkhop-stack", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


# --------------------------------------------------------------------------------------
# Installation.


def _postgres_bin_dir(paths: StackPaths | None = None) -> Path | None:
    """The PostgreSQL bin dir: the data dir's major version if initialised, else the newest."""
    found: dict[int, Path] = {}
    for postgres in Path("/usr/lib/postgresql").glob("*/bin/postgres"):
        version = postgres.parent.parent.name
        if version.isdigit():
            found[int(version)] = postgres.parent
    if not found:
        return None
    if paths is not None:
        with contextlib.suppress(OSError, ValueError):
            wanted = int((paths.pg_data / "PG_VERSION").read_text().strip())
            if wanted in found:
                return found[wanted]
    return found[max(found)]


def _redis_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def _kafka_jars_present(paths: StackPaths) -> bool:
    return any(paths.kafka_libs.glob(KAFKA_MAIN_JAR_GLOB))


def _privileged_prefix() -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo", "-n"]
    raise StackError(
        "installing system packages needs root: run as root, or install sudo "
        "(passwordless), or install postgresql and redis-server yourself"
    )


def _apt_install(packages: Sequence[str]) -> None:
    prefix = _privileged_prefix()
    log.info("installing %s with apt-get (once)", " ".join(packages))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run([*prefix, "apt-get", "update"], what="apt-get update", env=env, timeout=900)
    _run(
        [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", *packages],
        what="apt-get install",
        env=env,
        timeout=1800,
    )


def _fetch_kafka_jars(paths: StackPaths) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch the Kafka jars and is not installed")
    # Staged beside the final folder (which instances share), so the rename is atomic
    # and its parent exists even when another instance fetches first.
    staging = paths.kafka_libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    log.info("fetching Apache Kafka jars with Maven into %s (once)", paths.kafka_libs)
    _run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            paths.kafka_pom,
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ],
        what="mvn dependency:copy-dependencies (Kafka jars)",
        cwd=paths.root,
        timeout=1800,
    )
    if not any(staging.glob(KAFKA_MAIN_JAR_GLOB)):
        raise StackError(f"Maven ran but produced no {KAFKA_MAIN_JAR_GLOB} in {staging}")
    shutil.rmtree(paths.kafka_libs, ignore_errors=True)
    staging.rename(paths.kafka_libs)


def _ensure_components_installed(
    paths: StackPaths, *, postgres: bool, redis: bool, kafka: bool
) -> None:
    with _locked(paths):
        packages: list[str] = []
        if postgres and _postgres_bin_dir() is None:
            packages += APT_PACKAGES_POSTGRES
        if redis and _redis_server() is None:
            packages += APT_PACKAGES_REDIS
        need_jars = kafka and not _kafka_jars_present(paths)
        if kafka and shutil.which("java") is None:
            packages += APT_PACKAGES_JAVA
        if need_jars and shutil.which("mvn") is None:
            packages += APT_PACKAGES_MAVEN
        if packages:
            _apt_install(packages)
            if postgres and _postgres_bin_dir() is None:
                raise StackError("apt-get installed postgresql but no /usr/lib/postgresql/*/bin")
            if redis and _redis_server() is None:
                raise StackError("apt-get installed redis-server but it is not on PATH")
        if need_jars:
            _fetch_kafka_jars(paths)


def ensure_installed(paths: StackPaths) -> None:
    """Install what the stack needs, once: PostgreSQL, Redis, Java, the Kafka jars."""
    _ensure_components_installed(paths, postgres=True, redis=True, kafka=True)


# --------------------------------------------------------------------------------------
# PostgreSQL.


def _pg_os_user(paths: StackPaths) -> str | None:
    """The system user that runs PostgreSQL when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(FileNotFoundError, KeyError):
        owner = paths.pg_data.stat().st_uid
        if owner != 0:
            return pwd.getpwuid(owner).pw_name
    for name in ("postgres", PG_FALLBACK_SYSTEM_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    log.info("creating system user %s to run PostgreSQL", PG_FALLBACK_SYSTEM_USER)
    _run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            PG_FALLBACK_SYSTEM_USER,
        ],
        what="useradd",
    )
    return PG_FALLBACK_SYSTEM_USER


def _as_pg_user(user: str | None, cmd: Sequence[str | os.PathLike[str]]) -> list[str]:
    args = [os.fspath(c) for c in cmd]
    return ["runuser", "-u", user, "--", *args] if user else args


def _pg_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "5"
    return env


def _postgres_pid(paths: StackPaths, *, remove_stale: bool = True) -> int | None:
    return _find_pid(paths.pg_pid, paths.postgres_port, "postgres", remove_stale=remove_stale)


def _make_traversable(path: Path) -> None:
    """chmod o+x every ancestor of ``path`` that lacks it, so the postgres user reaches it."""
    for ancestor in reversed(path.resolve().parents):
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.warning("chmod o+x %s so the PostgreSQL user can reach its data", ancestor)
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _c_utf8_available() -> bool:
    try:
        out = subprocess.run(
            ["locale", "-a"], capture_output=True, text=True, check=False, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.strip().lower().replace("-", "") == "c.utf8" for line in out.splitlines())


def _pg_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _prepare_postgres(paths: StackPaths, bin_dir: Path, user: str | None) -> None:
    """Create the directories, initdb once, and (re)write the linkhop settings."""
    for directory in (paths.pg_dir, paths.pg_run, paths.pg_log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        if paths.pg_dir.stat().st_uid != entry.pw_uid or any(
            p.exists() and p.stat().st_uid != entry.pw_uid
            for p in (paths.pg_run, paths.pg_log_dir, paths.pg_data)
        ):
            _chown_tree(paths.pg_dir, entry.pw_uid, entry.pw_gid)
        _make_traversable(paths.pg_dir)

    if not (paths.pg_data / "PG_VERSION").exists():
        shutil.rmtree(paths.pg_data, ignore_errors=True)  # a half-done initdb
        base: list[str | os.PathLike[str]] = [
            bin_dir / "initdb",
            "-D",
            paths.pg_data,
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
        ]
        locale_args = ["-E", "UTF8", "--locale=C.UTF-8"]
        if not _c_utf8_available():
            locale_args = ["-E", "UTF8", "--no-locale"]
        log.info("initdb %s (%s)", paths.pg_data, " ".join(locale_args))
        try:
            _run(
                _as_pg_user(user, [*base, *locale_args]),
                what="initdb",
                cwd=paths.pg_dir,
                env=_pg_env(),
                timeout=300,
            )
        except StackError:
            if "--no-locale" in locale_args:
                raise
            log.warning("initdb with C.UTF-8 failed; retrying with --no-locale")
            shutil.rmtree(paths.pg_data, ignore_errors=True)
            _run(
                _as_pg_user(user, [*base, "-E", "UTF8", "--no-locale"]),
                what="initdb",
                cwd=paths.pg_dir,
                env=_pg_env(),
                timeout=300,
            )

    socket_path = paths.pg_run.resolve() / f".s.PGSQL.{paths.postgres_port}"
    # sun_path holds 107 bytes: past that, TCP only (pg_ctl -w does not need the socket).
    socket_dirs = str(paths.pg_run.resolve()) if len(os.fsencode(socket_path)) < 100 else ""
    settings = {
        "listen_addresses": _pg_quote(HOST),
        "port": str(paths.postgres_port),
        "unix_socket_directories": _pg_quote(socket_dirs),
        "max_connections": "200",
        "shared_buffers": "'512MB'",
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        # The click consumer writes about 2 KB of WAL per click: at the default 1GB a
        # sustained load forced a checkpoint every few seconds, and every page touched
        # after one is logged whole again (a tenth of the WAL in a pipeline bench).
        "max_wal_size": "'4GB'",
        "logging_collector": "off",
        "log_destination": "'stderr'",
        "log_timezone": "'UTC'",
        "timezone": "'UTC'",
    }
    conf = "# Written by deploy/local/stack.py on every start: edit it there.\n" + "".join(
        f"{key} = {value}\n" for key, value in settings.items()
    )
    linkhop_conf = paths.pg_data / "linkhop.conf"
    if not linkhop_conf.exists() or linkhop_conf.read_text() != conf:
        linkhop_conf.write_text(conf)
    main_conf = paths.pg_data / "postgresql.conf"
    include = "include_if_exists = 'linkhop.conf'"
    if include not in main_conf.read_text():
        with main_conf.open("a") as fh:
            fh.write(f"\n{include}\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(linkhop_conf, entry.pw_uid, entry.pw_gid)


def _psql(bin_dir: Path, conninfo: str, script: str, variables: dict[str, str]) -> str:
    psql = bin_dir / "psql" if (bin_dir / "psql").exists() else Path(shutil.which("psql") or "psql")
    cmd: list[str | os.PathLike[str]] = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    for key, value in variables.items():
        cmd += ["-v", f"{key}={value}"]
    cmd += ["-d", conninfo]
    return _run(cmd, what="psql", env=_pg_env(), input_text=script, timeout=60)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _create_database(bin_dir: Path, base_url: str, name: str) -> str:
    if not _DB_NAME_RE.match(name):
        raise StackError(f"invalid database name {name!r}")
    admin = _with_database(base_url, "postgres")
    exists_sql = "SELECT 1 FROM pg_database WHERE datname = :'dbname';\n"
    if _psql(bin_dir, admin, exists_sql, {"dbname": name}).strip() != "1":
        log.info("creating database %s", name)
        try:
            _psql(bin_dir, admin, 'CREATE DATABASE :"dbname";\n', {"dbname": name})
        except StackError as exc:  # created meanwhile by someone else
            if _psql(bin_dir, admin, exists_sql, {"dbname": name}).strip() != "1":
                raise StackError(f"cannot create database {name}: {exc}") from exc
    return _with_database(base_url, name)


def _wait_postgres(bin_dir: Path, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _psql(bin_dir, _with_database(url, "postgres"), "SELECT 1;\n", {})
            return
        except StackError as exc:
            if time.monotonic() >= deadline:
                raise StackError(f"PostgreSQL does not answer at {url}: {exc}") from exc
        time.sleep(0.2)


def start_postgres(paths: StackPaths) -> str:
    """Start (or reuse) PostgreSQL on 127.0.0.1:15432; returns the ``linkhop`` DB's URL."""
    with _locked(paths):
        _ensure_components_installed(paths, postgres=True, redis=False, kafka=False)
        bin_dir = _postgres_bin_dir(paths)
        assert bin_dir is not None
        pid = _postgres_pid(paths)
        if pid is None:
            foreign = _foreign_listener(paths.postgres_port)
            if foreign:
                raise StackError(f"port {paths.postgres_port} is taken by {foreign}")
            user = _pg_os_user(paths)
            _prepare_postgres(paths, bin_dir, user)
            log.info("starting PostgreSQL (%s)", bin_dir)
            try:
                _run(
                    _as_pg_user(
                        user,
                        [
                            bin_dir / "pg_ctl",
                            "-D",
                            paths.pg_data,
                            "-l",
                            paths.pg_log,
                            "-w",
                            "-t",
                            str(PG_START_TIMEOUT_S),
                            "start",
                        ],
                    ),
                    what="pg_ctl start",
                    cwd=paths.pg_dir,
                    env=_pg_env(),
                    timeout=PG_START_TIMEOUT_S + 30,
                )
            except StackError as exc:
                raise StackError(f"{exc}\n{_tail(paths.pg_log)}") from exc
        elif _read_pid(paths.pg_pid) != pid:
            log.info("reusing PostgreSQL pid %d (not started from this checkout)", pid)
        _wait_postgres(bin_dir, paths.database_url, PG_START_TIMEOUT_S)
        return _create_database(bin_dir, paths.database_url, "linkhop")


def stop_postgres(paths: StackPaths, hard: bool = False) -> None:
    """Stop PostgreSQL: ``pg_ctl stop -m fast`` (``-m immediate`` when ``hard``)."""
    with _locked(paths):
        pid = _postgres_pid(paths)
        if pid is None:
            return
        bin_dir = _postgres_bin_dir(paths)
        own = _read_pid(paths.pg_pid) == pid
        if own and bin_dir is not None:
            user = _pg_os_user(paths)
            mode = "immediate" if hard else "fast"
            log.info("stopping PostgreSQL (pid %d, -m %s)", pid, mode)
            with contextlib.suppress(StackError):  # SIGKILL fallback below
                _run(
                    _as_pg_user(
                        user,
                        [
                            bin_dir / "pg_ctl",
                            "-D",
                            paths.pg_data,
                            "-m",
                            mode,
                            "-w",
                            "-t",
                            "60",
                            "stop",
                        ],
                    ),
                    what="pg_ctl stop",
                    cwd=paths.pg_dir,
                    env=_pg_env(),
                    timeout=90,
                )
        sig = signal.SIGQUIT if hard else signal.SIGINT  # postmaster: immediate / fast
        _terminate(pid, "PostgreSQL", sig=sig, timeout=60)


def ensure_database(paths: StackPaths, name: str) -> str:
    """Create database ``name`` if missing and return its URL.

    On the server of ``LINKHOP_DATABASE_URL`` when that is set, else on the local stack
    (started if needed). Locally the owner is ``linkhop``, the role every URL uses.
    """
    external = _env_urls(paths)[0]
    bin_dir = _postgres_bin_dir(paths)
    if external:
        if bin_dir is None and shutil.which("psql") is None:
            _ensure_components_installed(paths, postgres=True, redis=False, kafka=False)
            bin_dir = _postgres_bin_dir(paths)
        return _create_database(bin_dir or Path("/usr/bin"), external, name)
    with _locked(paths):
        start_postgres(paths)
        bin_dir = _postgres_bin_dir(paths)
        assert bin_dir is not None
        return _create_database(bin_dir, paths.database_url, name)


# --------------------------------------------------------------------------------------
# Redis.


def _redis_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _redis_pid(paths: StackPaths, *, remove_stale: bool = True) -> int | None:
    return _find_pid(
        paths.redis_pid, paths.redis_port, "redis-server", remove_stale=remove_stale
    )


def _redis_ping(port: int = LOCAL_REDIS_PORT, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(paths: StackPaths) -> str:
    """Start (or reuse) Redis on 127.0.0.1:16379; returns its URL."""
    with _locked(paths):
        pid = _redis_pid(paths)
        if pid is None:
            _ensure_components_installed(paths, postgres=False, redis=True, kafka=False)
            foreign = _foreign_listener(paths.redis_port)
            if foreign:
                raise StackError(f"port {paths.redis_port} is taken by {foreign}")
            paths.redis_dir.mkdir(parents=True, exist_ok=True)
            redis_dir = paths.redis_dir.resolve()
            paths.redis_conf.write_text(
                "# Written by deploy/local/stack.py on every start: edit it there.\n"
                f"port {paths.redis_port}\n"
                f"bind {HOST}\n"
                "protected-mode yes\n"
                "daemonize yes\n"
                "supervised no\n"
                f"pidfile {_redis_quote(str(redis_dir / 'redis.pid'))}\n"
                f"logfile {_redis_quote(str(redis_dir / 'redis.log'))}\n"
                f"dir {_redis_quote(str(redis_dir))}\n"
                "appendonly no\n"
                'save ""\n'
                "loglevel notice\n"
            )
            server = _redis_server()
            assert server is not None
            log.info("starting Redis")
            _run([server, paths.redis_conf.resolve()], what="redis-server", timeout=30)
        elif _read_pid(paths.redis_pid) != pid:
            log.info("reusing Redis pid %d (not started from this checkout)", pid)
        if not _wait_until(lambda: _redis_ping(paths.redis_port), REDIS_READY_TIMEOUT_S):
            raise StackError(f"Redis does not answer PING\n{_tail(paths.redis_log)}")
        return paths.redis_url


def stop_redis(paths: StackPaths, hard: bool = False) -> None:
    """Stop Redis: SIGTERM (SIGKILL when ``hard``), then SIGKILL after 10 s."""
    with _locked(paths):
        pid = _redis_pid(paths)
        if pid is None:
            return
        _terminate(pid, "Redis", sig=signal.SIGKILL if hard else signal.SIGTERM, timeout=10)
        with contextlib.suppress(FileNotFoundError):
            paths.redis_pid.unlink()


# --------------------------------------------------------------------------------------
# Kafka.


def _kafka_pid(paths: StackPaths, *, remove_stale: bool = True) -> int | None:
    return _find_pid(paths.kafka_pid, paths.kafka_port, "kafka.Kafka", remove_stale=remove_stale)


def _kafka_cluster_id(paths: StackPaths) -> str:
    with contextlib.suppress(FileNotFoundError):
        existing = paths.kafka_cluster_id.read_text().strip()
        if existing:
            return existing
    meta = paths.kafka_data / "meta.properties"
    with contextlib.suppress(FileNotFoundError):
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                cluster_id = line.split("=", 1)[1].strip()
                paths.kafka_cluster_id.write_text(cluster_id + "\n")
                return cluster_id
    while True:  # Kafka's Uuid.randomUuid: url-safe base64, never starting with '-'
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            break
    paths.kafka_cluster_id.write_text(cluster_id + "\n")
    return cluster_id


def _write_kafka_config(paths: StackPaths) -> None:
    for directory in (paths.kafka_dir, paths.kafka_data, paths.kafka_logs):
        directory.mkdir(parents=True, exist_ok=True)
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{paths.kafka_controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{paths.kafka_port},"
        f"CONTROLLER://{HOST}:{paths.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{paths.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(paths.kafka_data.resolve()),
        "num.partitions": "4",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        # After a kill -9 the restarted controller keeps the dead incarnation's session
        # alive for broker.session.timeout.ms and rejects the new registration until then
        # (DUPLICATE_BROKER_REGISTRATION): 3 s instead of 9 s brings a restart to ~4 s.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "3000",
        "auto.create.topics.enable": "true",
        "log.retention.hours": "24",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
    }
    paths.kafka_properties.write_text(
        "# Written by deploy/local/stack.py on every start: edit it there.\n"
        + "".join(f"{key}={value}\n" for key, value in properties.items())
    )
    server_log = paths.kafka_logs.resolve() / "server.log"
    paths.kafka_log4j.write_text(
        "# Written by deploy/local/stack.py on every start: edit it there.\n"
        "log4j.rootLogger=INFO, file, stdout\n"
        "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
        f"log4j.appender.file.File={server_log}\n"
        "log4j.appender.file.MaxFileSize=20MB\n"
        "log4j.appender.file.MaxBackupIndex=3\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.Threshold=WARN\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.request.logger=WARN\n"
        "log4j.logger.org.apache.kafka.clients=WARN\n"
    )


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("java is not installed (needed for Kafka)")
    return java


def _kafka_java_cmd(paths: StackPaths, main_class: str, *args: str) -> list[str]:
    return [
        _java(),
        *KAFKA_JVM_OPTS,
        f"-Dlog4j.configuration=file:{paths.kafka_log4j.resolve()}",
        f"-Dkafka.logs.dir={paths.kafka_logs.resolve()}",
        "-cp",
        f"{paths.kafka_libs.resolve()}/*",
        main_class,
        *args,
    ]


def _format_kafka_storage(paths: StackPaths) -> None:
    if (paths.kafka_data / "meta.properties").exists():
        return
    cluster_id = _kafka_cluster_id(paths)
    log.info("formatting Kafka storage %s (cluster id %s)", paths.kafka_data, cluster_id)
    _run(
        _kafka_java_cmd(
            paths,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(paths.kafka_properties.resolve()),
            "--ignore-formatted",
        ),
        what="kafka StorageTool format",
        cwd=paths.kafka_dir,
        timeout=120,
    )


def _launch_kafka(paths: StackPaths) -> int:
    """Start the broker detached (not our child: no zombie, no Popen to reap); its pid."""
    _write_kafka_config(paths)
    _format_kafka_storage(paths)
    cmd = _kafka_java_cmd(paths, "kafka.Kafka", str(paths.kafka_properties.resolve()))
    stdout_log = paths.kafka_stdout.resolve()
    log.info("starting Kafka")
    # sh backgrounds the JVM and exits at once, printing its pid: the JVM is reparented
    # to init and keeps running in the new session after this process exits.
    out = _run(
        ["sh", "-c", '"$@" >>"$0" 2>&1 </dev/null & echo $!', str(stdout_log), *cmd],
        what="launching Kafka",
        cwd=paths.kafka_dir,
        timeout=30,
        new_session=True,
    )
    pid = int(out.strip())
    paths.kafka_pid.write_text(f"{pid}\n")
    return pid


async def _kafka_check(bootstrap: str, topic: str, partitions: int) -> str | None:
    """One readiness round: ``None`` when ready, else why not."""
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="linkhop-stack", request_timeout_ms=10000
    )
    try:
        await admin.start()
        response = await admin.create_topics(
            [NewTopic(name=topic, num_partitions=partitions, replication_factor=1)],
            timeout_ms=10000,
        )
        for entry in response.topic_errors:
            if entry[1] not in (0, _TOPIC_ALREADY_EXISTS):
                return f"CreateTopics {topic}: error code {entry[1]}"
        described = await admin.describe_topics([topic])
        if not described or described[0]["error_code"] != 0:
            return f"topic {topic} not visible yet: {described}"
        parts = described[0]["partitions"]
        if len(parts) < partitions:
            log.warning("topic %s has %d partitions: raising to %d", topic, len(parts), partitions)
            await admin.create_partitions({topic: NewPartitions(total_count=partitions)})
            return f"topic {topic} had {len(parts)} partitions"
        leaderless = [p["partition"] for p in parts if p["leader"] < 0 or p["error_code"] != 0]
        if leaderless:
            return f"partitions {leaderless} of {topic} have no leader yet"
        return None
    finally:
        await admin.close()


async def _kafka_wait_ready(
    bootstrap: str, alive: Callable[[], bool], budget_s: float, topic: str, partitions: int
) -> None:
    deadline = time.monotonic() + budget_s
    reason = "not tried"
    while True:
        if not alive():
            raise StackError(f"Kafka exited while starting (last state: {reason})")
        try:
            outcome = await asyncio.wait_for(_kafka_check(bootstrap, topic, partitions), 20)
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        if outcome is None:
            return
        reason = outcome
        if time.monotonic() >= deadline:
            raise StackError(f"Kafka at {bootstrap} not ready after {budget_s:.0f} s: {reason}")
        await asyncio.sleep(0.5)


def _await_kafka(paths: StackPaths, pid: int, timeout: float = KAFKA_READY_TIMEOUT_S) -> None:
    def alive() -> bool:
        return pid_alive(pid)

    def failure(message: str) -> StackError:
        return StackError(
            f"{message}\n{_tail(paths.kafka_stdout)}\n{_tail(paths.kafka_logs / 'server.log')}"
        )

    deadline = time.monotonic() + timeout
    port = paths.kafka_port
    if not _wait_until(lambda: _port_open(port) or not alive(), timeout, 0.2):
        raise failure(f"Kafka (pid {pid}) does not listen on {port} after {timeout} s")
    if not alive():
        raise failure(f"Kafka (pid {pid}) exited while starting")
    remaining = max(deadline - time.monotonic(), 5.0)
    try:
        _run_async(
            lambda: _kafka_wait_ready(
                paths.kafka_bootstrap, alive, remaining, CLICKS_TOPIC, CLICKS_PARTITIONS
            )
        )
    except StackError as exc:
        raise failure(str(exc)) from exc


def _start_kafka_process(paths: StackPaths) -> int:
    """The running broker's pid, launching it if needed (no readiness wait)."""
    pid = _kafka_pid(paths)
    if pid is not None:
        if _read_pid(paths.kafka_pid) != pid:
            log.info("reusing Kafka pid %d (not started from this checkout)", pid)
        return pid
    _ensure_components_installed(paths, postgres=False, redis=False, kafka=True)
    for port in (paths.kafka_port, paths.kafka_controller_port):
        foreign = _foreign_listener(port)
        if foreign:
            raise StackError(f"port {port} is taken by {foreign}")
    return _launch_kafka(paths)


def start_kafka(paths: StackPaths) -> str:
    """Start (or reuse) the single-node KRaft broker; returns the bootstrap address.

    Returns once the broker answers metadata and topic ``clicks`` has 4 partitions with
    a leader each (created if missing).
    """
    with _locked(paths):
        pid = _start_kafka_process(paths)
        _await_kafka(paths, pid)
        return paths.kafka_bootstrap


def stop_kafka(paths: StackPaths, hard: bool = False) -> None:
    """Stop the broker: SIGTERM and up to 20 s, then SIGKILL; ``hard`` is kill -9 at once."""
    with _locked(paths):
        pid = _kafka_pid(paths)
        if pid is not None:
            if hard:
                _terminate(pid, "Kafka", sig=signal.SIGKILL, timeout=10)
            else:
                _terminate(pid, "Kafka", sig=signal.SIGTERM, timeout=KAFKA_STOP_TIMEOUT_S)
        with contextlib.suppress(FileNotFoundError):
            paths.kafka_pid.unlink()


KafkaAction = Literal["start", "stop", "kill"]


def kafka_command(paths: StackPaths, action: KafkaAction,
                  cpus: Sequence[int] | None = None) -> list[str]:
    """The command line that starts, stops (SIGTERM) or kills (SIGKILL) ``paths``' broker
    from a process of its own, under ``taskset`` on ``cpus`` when given; run it with the
    repository root as the working directory.

    For callers that measure latencies while the broker comes and goes (the fault tests,
    the benchmark): :func:`start_kafka` polls the starting broker with an admin client,
    which in the caller's process would compete for the GIL and the core with what it
    measures; and a broker launched by a process on ``cpus`` runs there from its first
    instruction (a child inherits its parent's affinity)."""
    cmd = [sys.executable, "-m", "deploy.local.stack", f"kafka-{action}",
           "--root", str(paths.root)]
    if paths.instance:
        cmd += ["--instance", paths.instance]
    if paths.port_offset is not None:
        cmd += ["--port-offset", str(paths.port_offset)]
    if cpus:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]
    return cmd


# --------------------------------------------------------------------------------------
# The whole stack.


def start(paths: StackPaths) -> StackUrls:
    """Start (or reuse) every local server not replaced by a LINKHOP_* URL; their URLs.

    Kafka's JVM boots while PostgreSQL and Redis start; the call returns only when all of
    them answer real requests.
    """
    env_db, env_redis, env_kafka = _env_urls(paths)
    with _locked(paths):
        # One apt-get run for everything missing; Maven only if Kafka must be launched.
        _ensure_components_installed(
            paths,
            postgres=not env_db,
            redis=not env_redis and _redis_pid(paths) is None,
            kafka=not env_kafka and _kafka_pid(paths) is None,
        )
        kafka_pid = None if env_kafka else _start_kafka_process(paths)
        database_url = env_db or start_postgres(paths)
        redis_url = env_redis or start_redis(paths)
        if kafka_pid is not None:
            _await_kafka(paths, kafka_pid)
        return StackUrls(
            database_url=database_url,
            redis_url=redis_url,
            kafka_bootstrap=env_kafka or paths.kafka_bootstrap,
        )


def stop(paths: StackPaths) -> None:
    """Stop Kafka, then Redis, then PostgreSQL; no process of the stack is left."""
    with _locked(paths):
        pids = [
            pid
            for pid in (_kafka_pid(paths), _redis_pid(paths), _postgres_pid(paths))
            if pid is not None
        ]
        stop_kafka(paths)
        stop_redis(paths)
        stop_postgres(paths)
        left = [pid for pid in pids if pid_alive(pid)]
        if left:
            raise StackError(f"processes still alive after stop: {left}")


def server_pids(paths: StackPaths) -> dict[str, int | None]:
    """The pid of each local server (PostgreSQL's postmaster), None for one not running."""
    return {
        "postgres": _postgres_pid(paths, remove_stale=False),
        "redis": _redis_pid(paths, remove_stale=False),
        "kafka": _kafka_pid(paths, remove_stale=False),
    }


def status(paths: StackPaths) -> dict[str, bool]:
    """Which local servers run and accept connections on their port."""
    return {
        "postgres": _postgres_pid(paths, remove_stale=False) is not None
        and _port_open(paths.postgres_port),
        "redis": _redis_pid(paths, remove_stale=False) is not None
        and _redis_ping(paths.redis_port),
        "kafka": _kafka_pid(paths, remove_stale=False) is not None
        and _port_open(paths.kafka_port),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.stack",
        description="Run linkhop's local PostgreSQL, Redis and Kafka (under var/).",
    )
    parser.add_argument("command", choices=("install", "start", "stop", "status",
                                            "kafka-start", "kafka-stop", "kafka-kill"))
    parser.add_argument("--root", type=Path, default=None, help="repository root")
    parser.add_argument(
        "--instance",
        default="",
        help="a second, independent stack (var/stack-NAME, ports +100), e.g. 'faults'",
    )
    parser.add_argument("--port-offset", type=int, default=None,
                        help="ports of a named instance: the default ones plus this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        paths = StackPaths(args.root.resolve() if args.root else repo_root(), args.instance,
                           args.port_offset)
    except StackError as exc:
        log.error("%s", exc)
        return 2
    try:
        if args.command == "install":
            ensure_installed(paths)
        elif args.command == "start":
            started = time.monotonic()
            urls = start(paths)
            print(f"LINKHOP_DATABASE_URL={urls.database_url}")
            print(f"LINKHOP_REDIS_URL={urls.redis_url}")
            print(f"LINKHOP_KAFKA_BOOTSTRAP={urls.kafka_bootstrap}")
            log.info("stack ready in %.1f s", time.monotonic() - started)
        elif args.command == "stop":
            stop(paths)
        elif args.command == "kafka-start":
            print(f"LINKHOP_KAFKA_BOOTSTRAP={start_kafka(paths)}")
        elif args.command in ("kafka-stop", "kafka-kill"):
            stop_kafka(paths, hard=args.command == "kafka-kill")
        else:
            state = status(paths)
            print(json.dumps(state, indent=2))
            return 0 if all(state.values()) else 3
    except StackError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
