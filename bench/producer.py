"""The click pipeline's load: N click events put on a topic by this separate process.

``python -m bench.producer --bootstrap B --topic T --count N --links 1,2,3 --domain D``

Events are valid ``shared.events.ClickEvent`` JSON (one is built and validated by the
schema; the rest vary its id, time and link with a template, which is what lets one
Python process put a million events on the topic in reasonable time), spread over the
given links and, in time order, the last ``--days`` days, keyed by link id like the
redirect's. Each carries a visitor hash, as the edge's events do (drawn from a pool of
visitors), so the consumer's unique-visitor writes are part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from shared.events import ClickEvent

_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
_COUNTRIES = ("US", "DE", "FR", "GB", "IN", "BR", "JP")
# Distinct visitors the events are drawn from (the edge's hashes are 32 hex digits).
_VISITORS = 100_000


def event_template(domain_id: int) -> str:
    """A validated event, as a format string for the fields that vary."""
    sample = ClickEvent(link_id=1, domain_id=domain_id, path="p", status=302, ip="203.0.113.9",
                        user_agent=_AGENTS[0], referer="https://t.co/x", country="US")
    fields = json.loads(sample.to_bytes())
    fields.update(event_id="@ID@", ts="@TS@", link_id=-7, path="@PATH@",
                  user_agent="@UA@", country="@CC@", bot=False, visitor="@VISITOR@")
    text = json.dumps(fields, separators=(",", ":")).replace("{", "{{").replace("}", "}}")
    text = text.replace('"@ID@"', '"{id}"').replace('"@TS@"', '"{ts}"')
    text = text.replace("-7", "{link}").replace('"@PATH@"', '"p{link}"')
    text = text.replace('"@UA@"', "{ua}").replace('"@CC@"', '"{cc}"')
    text = text.replace('"@VISITOR@"', '"{visitor}"')
    return text.replace('"bot":false', '"bot":{bot}')


def render(template: str, *, link: int, ts: datetime, agent: int, country: str,
           visitor: str) -> bytes:
    return template.format(visitor=visitor,
        id=uuid.uuid4(), ts=ts.isoformat().replace("+00:00", "Z"), link=link,
        ua=json.dumps(_AGENTS[agent]), cc=country, bot="true" if agent == 2 else "false",
    ).encode()


async def produce(bootstrap: str, topic: str, count: int, links: list[int], domain_id: int,
                  days: int) -> float:
    template = event_template(domain_id)
    rng = random.Random(7)
    visitors = [f"{rng.getrandbits(128):032x}" for _ in range(_VISITORS)]
    ClickEvent.from_bytes(render(template, link=links[0], ts=datetime.now(UTC), agent=2,
                                 country="DE", visitor=visitors[0]))  # still valid events
    # In time order over the last ``days``, as a partition holds a backlog: the edge
    # stamps each event when it sends it, so a batch covers a stretch of time (and
    # touches that stretch's hourly and daily rows), never random instants of months.
    start = datetime.now(UTC) - timedelta(days=days)
    step = days * 86400 / max(count, 1)
    # zstd: what the redirect's producer sends by default.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=20,
                                max_batch_size=256 * 1024, compression_type="zstd")
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for i in range(count):
            link = links[i % len(links)]
            value = render(template, link=link, ts=start + timedelta(seconds=step * i),
                           agent=i % 3, country=_COUNTRIES[i % len(_COUNTRIES)],
                           visitor=visitors[rng.randrange(_VISITORS)])
            pending.append(await producer.send(topic, value=value, key=str(link).encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.producer")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--links", required=True, help="comma-separated link ids")
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    links = [int(x) for x in args.links.split(",") if x]
    seconds = asyncio.run(produce(args.bootstrap, args.topic, args.count, links, args.domain,
                                  args.days))
    print(json.dumps({"events": args.count, "seconds": seconds}))


if __name__ == "__main__":
    main()
