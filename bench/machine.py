"""What the figures were measured on: the machine and the versions of everything."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import redis as redis_sync

from bench.servers import nginx_binary
from deploy.local.stack import StackPaths


def _first(pattern: str, text: str, default: str = "unknown") -> str:
    match = re.search(pattern, text, re.M)
    return match.group(1).strip() if match else default


def cpu_model() -> str:
    try:
        return _first(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text())
    except OSError:
        return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        kib = int(_first(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), "0"))
    except OSError:
        return 0.0
    return kib / 1024 / 1024


def _tool_version(cmd: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return _first(pattern, done.stdout + done.stderr)


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def kafka_version(paths: StackPaths) -> str:
    jars = sorted(paths.kafka_libs.glob("kafka_2.13-*.jar"))
    jars = [j for j in jars if re.fullmatch(r"kafka_2\.13-[\d.]+\.jar", j.name)]
    return jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "unknown"


async def postgres_version(database_url: str) -> str:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


def redis_version(port: int) -> str:
    try:
        info: dict[str, Any] = redis_sync.Redis(port=port, socket_timeout=2).info("server")  # type: ignore[assignment]
        return str(info["redis_version"])
    except redis_sync.RedisError:
        return "unknown"


def describe(paths: StackPaths, postgres: str, redis_port: int) -> str:
    cpus = len(os.sched_getaffinity(0))
    rows = [
        ("CPU", f"{cpu_model()}, {os.cpu_count()} cores ({cpus} usable by this process)"),
        ("memory", f"{memory_gib():.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", sys.version.split()[0]),
        ("aiohttp", _package("aiohttp")),
        ("uvloop", _package("uvloop")),
        ("redis-py", _package("redis")),
        ("hiredis", _package("hiredis")),
        ("aiokafka", _package("aiokafka")),
        ("asyncpg", _package("asyncpg")),
        ("nginx", _tool_version([nginx_binary(), "-v"], r"nginx/(\S+)")),
        ("wrk", _tool_version(["wrk", "-v"], r"^wrk (\S+)")),
        ("py-spy", _package("py-spy")),
        ("Kafka", kafka_version(paths)),
        ("PostgreSQL", postgres),
        ("Redis", redis_version(redis_port)),
    ]
    return "\n".join(["| what | version |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])
