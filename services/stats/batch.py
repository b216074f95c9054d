"""Pure consumer logic: raw Kafka records in, what to write to Postgres out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import ValidationError

from shared.events import ClickEvent


@dataclass(frozen=True)
class RawRecord:
    partition: int
    offset: int
    value: bytes | None


@dataclass
class PartitionBatch:
    """What one partition's slice of a poll contributes."""

    partition: int
    first_offset: int
    next_offset: int
    events: list[ClickEvent] = field(default_factory=list)
    invalid: list[tuple[RawRecord, str]] = field(default_factory=list)


def decode(record: RawRecord) -> ClickEvent | str:
    """The event, or the reason it cannot be one (for the dead-letter topic)."""
    if record.value is None:
        return "empty message"
    try:
        return ClickEvent.from_bytes(record.value)
    except ValidationError as exc:
        return f"invalid click event: {exc.errors(include_url=False)[0]['msg']}"
    except ValueError as exc:
        return f"undecodable click event: {exc}"


def partition_batch(partition: int, records: list[RawRecord]) -> PartitionBatch:
    batch = PartitionBatch(
        partition=partition,
        first_offset=records[0].offset,
        next_offset=records[-1].offset + 1,
    )
    for record in records:
        decoded = decode(record)
        if isinstance(decoded, str):
            batch.invalid.append((record, decoded))
        else:
            batch.events.append(decoded)
    return batch


def clicks_per_link(events: list[ClickEvent]) -> dict[tuple[int, int], int]:
    """(link_id, domain_id) -> clicks."""
    return dict(Counter((e.link_id, e.domain_id) for e in events))
