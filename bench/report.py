"""The report: sections of markdown tables, targets with verdicts, rendered to
``docs/benchmarks.md``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.numbers import Verdict


def fmt(value: float, digits: int = 0, unit: str = "") -> str:
    """A figure for a table; an em dash when it could not be measured."""
    if math.isnan(value):
        return "—"
    return f"{value:,.{digits}f}{unit}"


def pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value * 100:.0f} %"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class TargetRow:
    issue: str
    what: str
    target: str
    measured: str
    verdict: Verdict


@dataclass
class Report:
    header: str
    machine: str = ""
    commands: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    targets: list[TargetRow] = field(default_factory=list)
    profiles: list[tuple[str, str]] = field(default_factory=list)

    def section(self, title: str, body: str) -> None:
        self.sections.append((title, body))

    def target(self, issue: str, what: str, target: str, measured: str,
               verdict: Verdict) -> None:
        self.targets.append(TargetRow(issue, what, target, measured, verdict))

    def render(self) -> str:
        parts = [self.header.rstrip(), "", "## Machine and versions", "", self.machine, ""]
        parts += ["## Targets", ""]
        if self.targets:
            parts.append(table(
                ["issue", "what", "target", "measured", "verdict"],
                [[t.issue, t.what, t.target, t.measured, t.verdict.text()]
                 for t in self.targets]))
        else:
            parts.append("(no target could be evaluated)")
        for title, body in self.sections:
            parts += ["", f"## {title}", "", body.rstrip()]
        if self.profiles:
            parts += ["", "## Where the time goes (profiles of missed targets)", ""]
            for title, body in self.profiles:
                parts += [f"### {title}", "", body.rstrip(), ""]
        parts += ["", "## Commands", "", "```", *self.commands, "```", ""]
        return "\n".join(parts)
