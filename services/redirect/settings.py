from __future__ import annotations

from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_REDIRECT_PORT, CommonSettings

GeoHeaders = Literal["cloudflare", "cloudfront", "vercel"]


class Settings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="LINKHOP_REDIRECT_", extra="ignore", frozen=True)

    port: int = DEFAULT_REDIRECT_PORT
    # Processes sharing the port (SO_REUSEPORT) when started with ``python -m services.redirect``.
    workers: int = 1

    # Signs password-unlock cookies and keys the visitor hash. Every worker and every
    # replica must share it; when unset, a random one is made per launch (cookies and
    # unique-visitor hashes then do not survive a restart).
    secret: SecretStr | None = None

    # In-process cache in front of Redis. A change announced on the change channel drops
    # the entry at once; the TTL bounds staleness when an announcement is missed.
    cache_ttl: timedelta = timedelta(seconds=2)
    cache_size: int = 100_000
    # Unknown paths (and hosts) are remembered this long, so repeated misses never reach
    # Postgres more than once per window.
    negative_ttl: timedelta = timedelta(seconds=10)
    # Postgres lookups per second (per worker) allowed for records Redis did not have;
    # bounds the database load of a scan of random paths.
    db_fallback_rate: float = 200.0
    db_fallback_burst: int = 400
    # Redis circuit breaker: this many consecutive failures open it for the cooldown.
    breaker_failures: int = 3
    breaker_cooldown: timedelta = timedelta(seconds=2)
    # Largest MGET batch (in lookups; one key each, three when the domain is not cached)
    # the auto-pipeliner sends at once, and how many batches may be out at once (lookups
    # made meanwhile wait and leave together: batches grow with the load).
    redis_batch_max: int = 256
    redis_batches_in_flight: int = 4
    redis_max_connections: int = 32
    db_pool_max: int = 4

    # Scanning: not-found answers per client (in process, per worker); past the limit
    # the client gets 429 before any lookup, so it cannot reach Postgres at all.
    not_found_limit: int = 60
    not_found_window: timedelta = timedelta(minutes=1)

    # Password-protected links.
    unlock_ttl: timedelta = timedelta(hours=1)
    password_attempts: int = 10
    password_window: timedelta = timedelta(minutes=5)

    # Geography: an edge header is trusted only when the peer is in ``trusted_proxies``.
    geo_headers: GeoHeaders | None = None
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # A MaxMind-format (.mmdb) country or city database; else the bundled RIR data.
    geoip_database: Path | None = None
    # Truncate (IPv4 /24, IPv6 /48) instead of dropping the IP of domains hiding IPs.
    truncate_hidden_ip: bool = False

    # Click events: bounded queue -> producer; disk spool when Kafka is away or the queue full.
    event_queue_size: int = 100_000
    event_batch_size: int = 1000
    # The sender waits this long for a batch to fill before sending a smaller one.
    event_linger: timedelta = timedelta(milliseconds=15)
    spool_dir: Path = Path("var/spool")
    # zstd (through cramjam, level 3): ~0.25 us of CPU per event here and the smallest
    # batches. aiokafka compresses lz4 at level 9 (the slow high-compression mode, ~1 us
    # per event) and gzip at level 9 (~5-7 us per event), with no setting to change it.
    kafka_compression: Literal["zstd", "lz4", "gzip", "none"] = "zstd"
    kafka_retry_interval: timedelta = timedelta(seconds=2)
    # The producer's request timeout (connect, metadata, produce requests).
    kafka_send_timeout: timedelta = timedelta(seconds=10)
    # A batch Kafka has not acknowledged within this is written to the spool at once and
    # Kafka counts as down (new events go to the spool) until a new producer connects:
    # what a SIGKILL of the process can lose is about this much traffic (twice at worst),
    # not ``kafka_send_timeout``'s worth (events.py, docs/reliability.md). A late
    # acknowledgement then makes a duplicate, which the stats consumer drops by event id.
    kafka_ack_timeout: timedelta = timedelta(milliseconds=250)
    # The spool is written (write(), which survives the death of the process) per batch
    # and fsynced (which survives a machine crash) at most this often: see spool.py.
    spool_fsync_interval: timedelta = timedelta(seconds=1)
