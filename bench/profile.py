"""py-spy profiles of a server during a load, summarised as the top frames."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_LINE_NO = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class FrameShare:
    frame: str
    percent: float


def _frame_name(frame: str) -> str:
    """``handler (services/redirect/handlers.py:12)`` without the line number."""
    return _LINE_NO.sub(")", frame.strip())


def summarise_collapsed(text: str, top: int = 12) -> tuple[list[FrameShare], list[FrameShare]]:
    """From py-spy's ``--format raw`` (collapsed stacks): the frames with the most samples
    on top of the stack (self time) and in the stack at all (inclusive time)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return [], []

    # The frames in (nearly) every sample are the chain from ``main`` to the event loop:
    # true but uninformative, so the inclusive list starts below them.
    root = max(inclusive.values())
    below_root = Counter({f: c for f, c in inclusive.items() if c < 0.98 * root})

    def shares(counter: Counter[str]) -> list[FrameShare]:
        return [FrameShare(f, 100 * c / total) for f, c in counter.most_common(top)]

    return shares(own), shares(below_root)


def markdown(raw: str, what: str) -> str:
    """The top frames of a raw py-spy profile as two markdown tables."""
    from bench.report import table

    own, inclusive = summarise_collapsed(raw)
    if not own:
        return "(py-spy recorded no samples)"
    return (f"py-spy record --nonblocking on {what}. Self time of `run_app` is the event "
            "loop itself (uvloop, in C: polling and waiting); time spent inside PostgreSQL, "
            "Redis or Kafka is not in this process, only the wait for it.\n\n"
            + table(["self time", "frame"], [[f"{s.percent:.1f} %", f"`{s.frame}`"]
                                              for s in own])
            + "\n\n"
            + table(["inclusive", "frame"], [[f"{s.percent:.1f} %", f"`{s.frame}`"]
                                              for s in inclusive]))


def record_during(pid: int, seconds: int, output: Path, action: Callable[[], object]
                  ) -> str | None:
    """Runs ``action`` while py-spy samples ``pid`` for ``seconds``; the raw profile."""
    output.unlink(missing_ok=True)
    recorder = start_record(pid, seconds, output)
    if recorder is None:
        return None
    try:
        action()
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            recorder.wait(timeout=seconds + 30)
    return output.read_text() if output.exists() else None


def py_spy() -> str | None:
    """The py-spy of this virtualenv (a dev dependency), else one on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start_record(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes] | None:
    """Samples ``pid`` for ``seconds`` without pausing it; None when py-spy is missing."""
    binary = py_spy()
    if binary is None:
        return None
    return subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
         "--format", "raw", "--output", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
