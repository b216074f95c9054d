"""Pure consumer logic: raw Kafka records in, what to write to Postgres out."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from services.stats.enrich import country_of, parse_agent, referer_host, social_network
from shared.events import ClickEvent


class Record(Protocol):
    """What the consumer reads of a Kafka record (aiokafka's ConsumerRecord has it, so
    a poll's records are decoded as they are, without a copy per record)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def key(self) -> bytes | None: ...


@dataclass(frozen=True)
class RawRecord:
    """A record made by hand (tests, tools) rather than polled."""

    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


@dataclass
class PartitionBatch:
    """What one partition's slice of a poll contributes."""

    partition: int
    first_offset: int
    next_offset: int
    # (offset, event): the offset decides what a replay after a rebalance may skip.
    events: list[tuple[int, ClickEvent]] = field(default_factory=list)
    invalid: list[tuple[Record, str]] = field(default_factory=list)


_MAX_ID = 2**63 - 1


def _text(value: str | None) -> str | None:
    """Postgres text cannot hold NUL: one such byte must not make a batch unwritable."""
    return value.replace("\x00", "") if value and "\x00" in value else value


def decode(record: Record) -> ClickEvent | str:
    """The event, or the reason it cannot be one (for the dead-letter topic)."""
    if record.value is None:
        return "empty message"
    try:
        event = ClickEvent.from_bytes(record.value)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"invalid click event: {where}: {first['msg']}" if where else (
            f"invalid click event: {first['msg']}")
    except ValueError as exc:
        return f"undecodable click event: {exc}"
    if not (0 < event.link_id <= _MAX_ID and 0 < event.domain_id <= _MAX_ID):
        return "invalid click event: link_id and domain_id must be positive 64-bit integers"
    return event


# The edge reports every visit of a known link; only the ones that reached the
# destination (a redirect, or the cloaking page framing it) are clicks. Password-form
# views and visits of expired links are not (None: events from before `outcome`).
COUNTED_OUTCOMES = frozenset({None, "redirect", "cloak"})


def partition_batch(partition: int, records: Sequence[Record]) -> PartitionBatch:
    batch = PartitionBatch(
        partition=partition,
        first_offset=records[0].offset,
        next_offset=records[-1].offset + 1,
    )
    for record in records:
        decoded = decode(record)
        if isinstance(decoded, str):
            batch.invalid.append((record, decoded))
        elif decoded.outcome in COUNTED_OUTCOMES:
            batch.events.append((record.offset, decoded))
    return batch


# The raw-click columns, in the order of ``click_columns``' arrays and of the INSERT.
CLICK_COLUMNS = (
    "event_id", "ts", "link_id", "domain_id", "path", "ip", "user_agent", "referer",
    "country", "region", "city", "browser", "os", "device", "referer_host", "social",
    "utm_source", "utm_medium", "utm_campaign", "bot", "visitor", "combo",
)
_UNIT, _NONE = "\x1f", "\x00"


@functools.lru_cache(maxsize=65536)  # combinations repeat heavily; the hash is the cost
def combo_key(values: tuple[str | None, ...], bot: bool) -> int:
    """A stable signed 64-bit key of one combination of dimension values (the same in
    every process, unlike ``hash``); collisions are as likely as 2**-64 per pair."""
    text = _UNIT.join(_NONE if v is None else v for v in values) + ("b" if bot else "h")
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def click_columns(events: list[ClickEvent]) -> list[list[Any]]:
    """Enriched clicks as one array per column (for a single ``unnest`` insert)."""
    columns: list[list[Any]] = [[] for _ in CLICK_COLUMNS]
    (event_id, ts, link_id, domain_id, path, ip, user_agent, referer, country, region, city,
     browser, os_, device, ref_host, social, utm_source, utm_medium, utm_campaign, bot,
     visitor, combo) = columns
    for e in events:
        agent = parse_agent(_text(e.user_agent))
        host = referer_host(_text(e.referer))
        place = _text(e.country) or country_of(e.ip)
        network = social_network(host)
        is_bot = e.bot or agent.bot
        event_id.append(e.event_id)
        ts.append(e.ts)
        link_id.append(e.link_id)
        domain_id.append(e.domain_id)
        path.append(_text(e.path))
        ip.append(_text(e.ip))
        user_agent.append(_text(e.user_agent))
        referer.append(_text(e.referer))
        country.append(place)
        region.append(_text(e.region))
        city.append(_text(e.city))
        browser.append(agent.browser)
        os_.append(agent.os)
        device.append(agent.device)
        ref_host.append(host)
        social.append(network)
        utm_source.append(_text(e.utm_source))
        utm_medium.append(_text(e.utm_medium))
        utm_campaign.append(_text(e.utm_campaign))
        bot.append(is_bot)
        visitor.append(_text(e.visitor))
        combo.append(combo_key((place, _text(e.region), _text(e.city), agent.browser,
                                agent.os, agent.device, host, network, _text(e.utm_source),
                                _text(e.utm_medium), _text(e.utm_campaign)), is_bot))
    return columns


@dataclass
class PreparedBatch:
    """A partition's slice, enriched and laid out as insert columns (done before the
    transaction, so row locks are held only for the write itself)."""

    partition: int
    first_offset: int
    next_offset: int
    offsets: list[int]
    columns: list[list[Any]]

    def columns_from(self, offset: int) -> list[list[Any]]:
        """The columns of the events at or after ``offset`` (the part not yet counted)."""
        keep = [i for i, o in enumerate(self.offsets) if o >= offset]
        return [[column[i] for i in keep] for column in self.columns]


def prepare(batch: PartitionBatch) -> PreparedBatch:
    return PreparedBatch(
        partition=batch.partition,
        first_offset=batch.first_offset,
        next_offset=batch.next_offset,
        offsets=[o for o, _ in batch.events],
        columns=click_columns([e for _, e in batch.events]),
    )

