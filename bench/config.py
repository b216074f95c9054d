"""How long and how often: the knobs of one benchmark run (full or ``--quick``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    runs: int = 3  # every figure is the median of this many runs
    seconds: int = 3  # one wrk load
    connections: tuple[int, ...] = (64, 256)
    workers: tuple[int, ...] = (1, 2)
    links: int = 10_000
    # The issue asks for 1,000,000; produced once (~55 s here) and consumed six times it
    # does not fit the 10-minute budget on 2 cores next to the other sections.
    events: int = 300_000
    consumers: tuple[int, ...] = (1, 2)
    creates: int = 200  # single creates, at creates_per_s
    creates_per_s: float = 50.0
    list_limit: int = 150
    stats_clicks: int = 1_000_000
    stats_days: int = 90
    stats_calls: int = 200  # per endpoint and run
    profile: bool = True
    quick: bool = False

    @classmethod
    def quick_mode(cls) -> BenchConfig:
        """A smoke run: every section end to end, one run each, small counts."""
        return cls(runs=1, seconds=2, links=2_000, events=50_000, creates=50,
                   stats_clicks=100_000, stats_calls=30, quick=True)
