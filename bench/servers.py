"""The processes the benchmark starts itself: nginx, bare aiohttp, a private Redis, and
linkhop's services (through deploy.local.processes), each pinned to its cores.

Every process has its PID in ``var/bench/run/LABEL.pid`` (the layout of
``deploy.local.processes``), so whatever a crashed earlier run left behind is found and
stopped by its PID at the next start, and nothing else is ever touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import string
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.local import processes

NGINX_TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "bench" / "nginx.conf.template"
APT_PACKAGES = {"wrk": "wrk", "nginx": "nginx-light", "taskset": "util-linux"}


class BenchSetupError(RuntimeError):
    """Something the benchmark needs could not be installed or started."""


@dataclass(frozen=True)
class CpuPlan:
    """Which cores each server worker and the load generator run on."""

    workers: list[list[int]]  # one core list per server worker process
    load: list[int]  # wrk's cores
    shared: bool  # True when wrk shares a core with a server worker

    @property
    def server_cores(self) -> list[int]:
        return sorted({c for cores in self.workers for c in cores})

    def describe(self) -> str:
        servers = ", ".join(",".join(map(str, c)) for c in self.workers)
        note = " (wrk shares the servers' cores)" if self.shared else ""
        return f"server worker cores [{servers}], wrk cores [{','.join(map(str, self.load))}]{note}"


def cpu_plan(workers: int, cpus: Sequence[int]) -> CpuPlan:
    """Worker i on its own core, wrk on the cores left; when none is left, wrk on all."""
    cores = sorted(cpus)
    if not cores or workers < 1:
        raise ValueError("need at least one core and one worker")
    assigned = [[cores[i % len(cores)]] for i in range(workers)]
    rest = cores[workers:]
    if rest:
        return CpuPlan(assigned, rest, shared=False)
    return CpuPlan(assigned, cores, shared=True)


def ensure_tools() -> None:
    """Installs wrk and nginx from Debian's packages when missing (root or sudo)."""
    missing = [pkg for tool, pkg in APT_PACKAGES.items() if _which(tool) is None]
    if not missing:
        return
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run([*prefix, "apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchSetupError(f"apt-get install {' '.join(missing)} failed:\n{done.stderr}")


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def nginx_binary() -> str:
    found = _which("nginx")
    if found is None:
        raise BenchSetupError("nginx is not installed")
    return found


def render_nginx_conf(template: str, *, prefix: Path, port: int, workers: int) -> str:
    return string.Template(template).substitute(prefix=str(prefix), port=port, workers=workers)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port: int, *, timeout: float = 20.0,
              process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BenchSetupError(f"the process for port {port} exited ({process.returncode})")
        if port_open(port):
            return
        time.sleep(0.1)
    raise BenchSetupError(f"nothing listens on port {port} after {timeout:.0f}s")


@dataclass
class Spawned:
    """One process the benchmark started, known by its label and PID."""

    var: Path
    label: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 15.0) -> None:
        processes.stop_service(self.var, self.label, timeout=timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)


def spawn(var: Path, label: str, cmd: Sequence[str], *, cores: Sequence[int] | None = None,
          env: Mapping[str, str] | None = None) -> Spawned:
    """Starts ``cmd`` in its own session, pinned to ``cores``, its PID in var/run."""
    (var / "run").mkdir(parents=True, exist_ok=True)
    (var / "log").mkdir(parents=True, exist_ok=True)
    full = ["taskset", "-c", ",".join(map(str, cores)), *cmd] if cores else list(cmd)
    with (var / "log" / f"{label}.log").open("ab") as log:
        process = subprocess.Popen(
            full, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    (var / "run" / f"{label}.pid").write_text(str(process.pid))
    return Spawned(var, label, process)


def start_linkhop(var: Path, name: str, label: str, env: Mapping[str, str],
                  cores: Sequence[int] | None = None) -> Spawned:
    """``python -m services.NAME`` through deploy.local.processes, then pinned."""
    process = processes.start_service(var, name, env, instance=label)
    if cores:
        # Pinned right after the fork, before the service has started any thread.
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(process.pid, set(cores))
    return Spawned(var, label, process)


def start_nginx(var: Path, port: int, workers: int, cores: Sequence[int]) -> Spawned:
    prefix = (var / "nginx").resolve()
    for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(render_nginx_conf(NGINX_TEMPLATE.read_text(), prefix=prefix, port=port,
                                      workers=workers))
    server = spawn(var, "nginx", [nginx_binary(), "-e", str(prefix / "error.log"),
                                  "-p", str(prefix), "-c", str(conf)], cores=cores)
    wait_port(port, process=server.process)
    return server


def start_bare(var: Path, port: int, plan: CpuPlan) -> list[Spawned]:
    servers = [
        spawn(var, f"bare-aiohttp-{i}", [sys.executable, "-m", "bench.bare_aiohttp",
                                         "--port", str(port)], cores=cores)
        for i, cores in enumerate(plan.workers)
    ]
    for server in servers:
        processes.wait_healthy(f"http://127.0.0.1:{port}", process=server.process)
    return servers


def pin(pid: int, cores: Sequence[int]) -> None:
    """Moves a running process (and the threads it has) onto ``cores``."""
    with contextlib.suppress(ProcessLookupError):
        for task in (Path("/proc") / str(pid) / "task").iterdir():
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                os.sched_setaffinity(int(task.name), set(cores))


def start_redis(var: Path, port: int) -> Spawned:
    """A private Redis: stopping it for the fallback scenario disturbs nobody else.

    Its data is saved to ``bench.rdb`` before a stop (see ``save_and_stop``) and loaded
    again at start, so a restart does not lose the links.
    """
    server_bin = _which("redis-server")
    if server_bin is None:
        raise BenchSetupError("redis-server is not installed (deploy.local.stack installs it)")
    data = (var / "redis").resolve()
    data.mkdir(parents=True, exist_ok=True)
    server = spawn(var, "bench-redis", [
        server_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(data), "--dbfilename", "bench.rdb",
        "--daemonize", "no", "--protected-mode", "yes",
    ])
    wait_port(port, process=server.process)
    return server


def stop_leftovers(var: Path) -> list[str]:
    """Stops what an earlier, interrupted benchmark left running (by its PID files)."""
    return processes.stop_all(var)
