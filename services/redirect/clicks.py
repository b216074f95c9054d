"""Turning a visit into the wire form of :class:`shared.events.ClickEvent`, off the
request's path.

The handler only packs a :data:`Draft` (a plain tuple of what it already knows): a
pydantic model per request would cost more than the rest of the cache-hit path. The
background sender turns drafts into the JSON of ``ClickEvent`` (same fields, same
schema version: ``tests/redirect/test_units.py`` checks that ``ClickEvent`` reads it
back unchanged), adding what can be computed later: the event id, the bot flag, the
keyed visitor hash and the hiding of the IP.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache, partial
from itertools import count
from json.encoder import encode_basestring

from services.redirect.visitor import hide_ip, is_bot, visitor_hash
from shared.events import CLICK_SCHEMA_VERSION

# (ts, link_id, domain_id, path, status, client_ip, user_agent, referer, country, region,
#  ab_side, utm_source, utm_medium, utm_campaign, outcome, hide_visitor_ip)
Draft = tuple[float, int, int, str, int, str | None, str, str | None, str | None,
              str | None, str | None, str | None, str | None, str | None, str, bool]


class EventIds:
    """Unique event ids as UUIDs (version-4 layout): 62 random bits per process start,
    then a counter. Cheaper than ``uuid4()`` per event; unique across processes and
    restarts with overwhelming probability, and never repeated within one process."""

    def __init__(self) -> None:
        raw = bytearray(os.urandom(10))
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        self._prefix = f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"
        self._counter = count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


def _str(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


class _Timestamps:
    """ISO 8601 UTC text of an epoch time; the part up to the second is made once per
    second (``datetime`` formatting per event costs more than the rest of the event)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, ts: float) -> str:
        second = int(ts)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        micros = int((ts - second) * 1_000_000)
        return f"{self._prefix}.{micros:06d}Z"


class Encoder:
    """Writes the JSON of a ClickEvent directly: every user-supplied string goes through
    the C JSON string encoder; the rest are numbers, booleans and our own constants."""

    def __init__(self, visitor_key: bytes, truncate_hidden_ip: bool) -> None:
        self._ids = EventIds()
        self._times = _Timestamps()
        # Visitors repeat (several clicks, several links): the keyed hash is memoised.
        self._visitor = lru_cache(maxsize=16384)(partial(visitor_hash, visitor_key))
        self._truncate = truncate_hidden_ip

    def encode(self, draft: Draft) -> bytes:
        (ts, link_id, domain_id, path, status, ip, user_agent, referer, country, region,
         ab_side, utm_source, utm_medium, utm_campaign, outcome, hide) = draft
        shown_ip = hide_ip(ip, self._truncate) if hide else ip
        visitor = self._visitor(ip or "", user_agent)
        bot = "true" if is_bot(user_agent) else "false"
        return (
            f'{{"schema_version":{CLICK_SCHEMA_VERSION},"event_id":"{self._ids.next()}",'
            f'"ts":"{self._times.format(ts)}","link_id":{int(link_id)},'
            f'"domain_id":{int(domain_id)},"path":{encode_basestring(path)},'
            f'"status":{int(status)},"ip":{_str(shown_ip)},'
            f'"user_agent":{_str(user_agent or None)},"referer":{_str(referer)},'
            f'"country":{_str(country)},"region":{_str(region)},"city":null,'
            f'"ab_side":{_str(ab_side)},"bot":{bot},"visitor":"{visitor}",'
            f'"utm_source":{_str(utm_source)},"utm_medium":{_str(utm_medium)},'
            f'"utm_campaign":{_str(utm_campaign)},"outcome":{_str(outcome)}}}'
        ).encode()
