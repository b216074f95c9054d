"""wrk, the HTTP load generator: its command line, its Lua path script, its output.

The parser is a pure function of wrk's text output (``--latency``), so it is unit
tested without running wrk.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_LATENCY_LINE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_NON_3XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


class WrkOutputError(ValueError):
    """wrk printed something this parser does not understand (or failed to run)."""


@dataclass(frozen=True)
class WrkResult:
    requests: int  # responses completed (any status)
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_3xx: int  # responses that were neither 2xx nor 3xx
    socket_errors: int

    @property
    def answered_ok(self) -> int:
        """Responses with a 2xx or 3xx status."""
        return self.requests - self.non_3xx


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS_S[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures of one wrk run from its ``--latency`` output."""
    requests = _REQUESTS.search(output)
    rps = _RPS.search(output)
    latencies = {m.group(1): _seconds(m.group(2), m.group(3)) for m in
                 _LATENCY_LINE.finditer(output)}
    if requests is None or rps is None or "50" not in latencies or "99" not in latencies:
        raise WrkOutputError(f"unexpected wrk output:\n{output}")
    non_3xx = _NON_3XX.search(output)
    socket = _SOCKET.search(output)
    return WrkResult(
        requests=int(requests.group(1)),
        seconds=_seconds(requests.group(2), requests.group(3)),
        rps=float(rps.group(1)),
        p50_ms=latencies["50"] * 1000,
        p99_ms=latencies["99"] * 1000,
        non_3xx=int(non_3xx.group(1)) if non_3xx else 0,
        socket_errors=sum(int(g) for g in socket.groups()) if socket else 0,
    )


def cycling_paths_script(paths: Sequence[str]) -> str:
    """A wrk Lua script whose every request asks for the next path of ``paths``, in turn."""
    if not paths:
        raise ValueError("at least one path")
    quoted = ",".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in paths)
    return (
        "-- Written by bench/wrk.py: each request takes the next path, round robin.\n"
        f"local paths = {{{quoted}}}\n"
        "local n = #paths\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % n + 1\n"
        "  return wrk.format(nil, paths[i])\n"
        "end\n"
    )


def wrk_command(
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    host: str | None = None,
    script: Path | None = None,
    cores: Sequence[int] | None = None,
) -> list[str]:
    """The command line: ``taskset`` onto ``cores`` when given, one wrk thread by default."""
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, math.ceil(seconds))}s",
        "--latency", "--timeout", "5s",
    ]
    if host:
        cmd += ["-H", f"Host: {host}"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if cores:
        cmd = ["taskset", "-c", ",".join(map(str, cores)), *cmd]
    return cmd


def run_wrk(cmd: Sequence[str], *, timeout: float) -> WrkResult:
    """Runs wrk to completion (bounded by ``timeout``) and parses its output."""
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise WrkOutputError(f"wrk did not finish in {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise WrkOutputError(f"wrk exited {done.returncode}: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)
