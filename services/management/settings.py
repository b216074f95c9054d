"""The management service's settings (env prefix ``LINKHOP_MANAGEMENT_``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.ratelimit import RateRule
from shared.settings import DEFAULT_MANAGEMENT_PORT, CommonSettings

# Short.io documents 20-50 requests/s per endpoint, bulk create 5 calls per 10 s and
# bulk QR 1 call per minute; linkhop uses the top of that range for single calls.
DEFAULT_READ_RATE = RateRule(limit=50, period=1)
DEFAULT_WRITE_RATE = RateRule(limit=50, period=1)
DEFAULT_ENDPOINT_RATES = {
    "POST /links/bulk": RateRule(limit=5, period=10),
    "POST /links/qr/bulk": RateRule(limit=1, period=60),
}


class Settings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="LINKHOP_MANAGEMENT_", extra="ignore",
                                      frozen=True)

    port: int = DEFAULT_MANAGEMENT_PORT
    # How often links past their ttl are deleted (the bound on how late that happens).
    ttl_sweep_interval: timedelta = timedelta(seconds=10)
    # Write-through outbox (services/management/writethrough.py): how often rows a
    # request could not deliver are written to Redis, and how old a row must be before
    # the drainer takes it (younger ones belong to requests still delivering). Together
    # the bound on how long Redis lags a committed change after an outage ends.
    outbox_interval: timedelta = timedelta(seconds=1)
    outbox_min_age: timedelta = timedelta(seconds=2)
    # Scheme of the short URLs this installation hands out (shortURL / secureShortURL).
    short_url_scheme: str = "https"

    # Rate limits per API key and endpoint class ("METHOD /route/{template}"). Reads
    # (GET/HEAD) and writes have a default each; ``rate_limits`` overrides single
    # endpoints (JSON in LINKHOP_MANAGEMENT_RATE_LIMITS, e.g.
    # '{"POST /links/bulk": {"limit": 5, "period": 10}}').
    rate_limit_read: RateRule = DEFAULT_READ_RATE
    rate_limit_write: RateRule = DEFAULT_WRITE_RATE
    rate_limits: dict[str, RateRule] = Field(default_factory=lambda: dict(DEFAULT_ENDPOINT_RATES))
    rate_limit_enabled: bool = True
    # The limiter's own Redis (defaults to LINKHOP_REDIS_URL), and its in-process
    # fallback while that Redis is away (see shared/ratelimit.py).
    rate_limit_redis_url: str | None = None
    rate_limit_fallback_buckets: int = 10_000
    rate_limit_fallback_cooldown: float = 1.0
