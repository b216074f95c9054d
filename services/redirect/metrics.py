"""``GET /metrics``: the edge's counters in the Prometheus text format (per process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.redirect.events import ClickEmitter
from services.redirect.resolve import Resolver


@dataclass
class Counters:
    """Request outcomes, counted by the handler."""

    responses: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.responses[outcome] = self.responses.get(outcome, 0) + 1


def sample_line(name: str, labels: str, value: int) -> str:
    """One sample; every sample here is a count, written whole (a float format such as
    ``:g`` keeps 6 digits: a counter past a million would seem to stand still)."""
    return f"{name}{labels} {int(value)}"


def render(counters: Counters, resolver: Resolver, emitter: ClickEmitter) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, int]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(sample_line(name, labels, value) for labels, value in samples)

    metric("linkhop_redirect_responses_total", "counter", "Answers by outcome.",
           [(f'{{outcome="{k}"}}', v) for k, v in sorted(counters.responses.items())])
    metric("linkhop_click_events_sent_total", "counter",
           "Click events acknowledged by Kafka.", [("", emitter.sent)])
    metric("linkhop_click_events_spooled_total", "counter",
           "Click events written to the disk spool.", [("", emitter.spooled)])
    metric("linkhop_click_events_replayed_total", "counter",
           "Spooled click events delivered to Kafka.", [("", emitter.replayed)])
    metric("linkhop_click_events_dropped_total", "counter",
           "Click events lost (spool unwritable).", [("", emitter.dropped)])
    metric("linkhop_click_events_queued", "gauge",
           "Click events waiting in memory.", [("", emitter.queued)])
    metric("linkhop_kafka_up", "gauge", "1 when the producer is connected.",
           [("", 1 if emitter.kafka_up else 0)])
    metric("linkhop_cache_entries", "gauge", "Records in the in-process cache.",
           [('{kind="domain"}', len(resolver.domains)), ('{kind="link"}', len(resolver.links))])
    metric("linkhop_redis_batches_total", "counter", "MGET round trips sent.",
           [("", resolver.batcher.batches)])
    metric("linkhop_redis_lookups_total", "counter", "Lookups carried by those round trips.",
           [("", resolver.batcher.lookups)])
    metric("linkhop_redis_errors_total", "counter", "Failed Redis lookups.",
           [("", resolver.redis_errors)])
    metric("linkhop_redis_breaker_open", "gauge", "1 while the Redis breaker is open.",
           [("", 1 if resolver.breaker.is_open else 0)])
    metric("linkhop_redis_breaker_opened_total", "counter", "Times the breaker opened.",
           [("", resolver.breaker.opened)])
    metric("linkhop_db_lookups_total", "counter", "Postgres fallback queries.",
           [("", resolver.db_lookups)])
    metric("linkhop_db_budget_refusals_total", "counter",
           "Fallbacks refused by the rate budget.", [("", resolver.budget_refusals)])
    return "\n".join(lines) + "\n"
