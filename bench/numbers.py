"""Pure arithmetic of the benchmark: medians, percentiles, ratios and target verdicts.

Every figure in the report is the median of several runs, and every ratio is taken
inside one run (then the median of those ratios), because the machine is shared and
noisy: figures from different moments are not comparable, ratios from one moment are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values (a figure that could not be measured)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (the value at or below which ``pct`` % of samples fall)."""
    if not values:
        return math.nan
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {pct}")
    ordered = sorted(values)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; NaN when either is unknown or the denominator is 0."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Run i's numerator over run i's denominator: ratios taken inside one run each."""
    if len(numerators) != len(denominators):
        raise ValueError("paired ratios need one numerator and one denominator per run")
    return [ratio(n, d) for n, d in zip(numerators, denominators, strict=True)]


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the per-run ratios (runs whose ratio is unknown are left out)."""
    return median([r for r in paired_ratios(numerators, denominators) if not math.isnan(r)])


@dataclass(frozen=True)
class Verdict:
    """A measured figure against a target: whether it holds and by how much."""

    passed: bool
    margin: float  # relative: +0.12 is 12 % better than the target, -0.30 is 30 % short
    counted: bool = False  # a count that must be 0: no margin to give

    def text(self) -> str:
        if math.isnan(self.margin):
            return "not measured"
        word = "PASS" if self.passed else "MISS"
        return word if self.counted else f"{word} ({self.margin * 100:+.0f} %)"


def at_least(measured: float, target: float) -> Verdict:
    """Verdict for a floor (throughput, ratio): the margin is measured/target - 1."""
    if math.isnan(measured):
        return Verdict(False, math.nan)
    return Verdict(measured >= target, measured / target - 1)


def at_most(measured: float, target: float) -> Verdict:
    """Verdict for a ceiling (latency): the margin is 1 - measured/target."""
    if math.isnan(measured):
        return Verdict(False, math.nan)
    return Verdict(measured <= target, 1 - measured / target)


def none(count: int) -> Verdict:
    """Verdict for things that must never happen (errors, lost events): a count of 0."""
    return Verdict(count == 0, 0.0, counted=True)
