"""Starting and stopping linkhop's own service processes on loopback.

Used by ``linkhop dev``/``linkhop stop``, the benchmarks and the fault tests. Each
service runs as ``python -m services.NAME`` in its own session, with its PID in
``var/run/NAME.pid`` so it can be stopped (and only it) later.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

SERVICE_NAMES = ("redirect", "management", "stats")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it), for a service to listen on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_file(var: Path, name: str) -> Path:
    return var / "run" / f"{name}.pid"


def cpu_seconds(stat_file: Path) -> float:
    """User + system CPU time of a process or thread so far: its ``/proc/.../stat``
    (``/proc/PID/stat`` counts every thread of the process)."""
    text = stat_file.read_text()
    fields = text[text.rfind(")") + 2:].split()  # after the command name, which may hold ")"
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (PID 1 may never reap an orphan, so a
    stopped server can linger as one)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    state = stat_text[stat_text.rfind(")") + 2 : stat_text.rfind(")") + 3]
    return state not in ("Z", "X")


def running_pid(var: Path, name: str) -> int | None:
    pid_file = _pid_file(var, name)
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if pid_alive(pid):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def start_service(
    var: Path, name: str, env: Mapping[str, str], *, instance: str | None = None
) -> subprocess.Popen[bytes]:
    """Starts ``services.<name>``; ``instance`` names extra copies (their own pid file)."""
    label = instance or name
    (var / "run").mkdir(parents=True, exist_ok=True)
    (var / "log").mkdir(parents=True, exist_ok=True)
    log = (var / "log" / f"{label}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{name}"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    _pid_file(var, label).write_text(str(process.pid))
    return process


def wait_healthy(url: str, *, timeout: float = 30.0,
                 process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f}s: {last_error}")


def stop_service(var: Path, label: str, *, timeout: float = 15.0, hard: bool = False) -> bool:
    """SIGTERM (or SIGKILL when ``hard``), wait, then SIGKILL; True if one was running."""
    pid = running_pid(var, label)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
    _pid_file(var, label).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collects our own child so it does not linger as a zombie that looks alive."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_all(var: Path) -> list[str]:
    stopped = []
    run = var / "run"
    labels = sorted(p.stem for p in run.glob("*.pid")) if run.exists() else []
    for label in labels:
        if label in ("kafka", "redis", "postgres"):
            continue
        if stop_service(var, label):
            stopped.append(label)
    return stopped
