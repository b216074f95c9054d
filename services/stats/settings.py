from __future__ import annotations

from datetime import timedelta

from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_STATS_PORT, CommonSettings


class Settings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="LINKHOP_STATS_", extra="ignore", frozen=True)

    port: int = DEFAULT_STATS_PORT
    consumer_group: str = "linkhop-stats"
    # Run the Kafka consumer inside this process (off for an API-only replica).
    run_consumer: bool = True
    batch_max_records: int = 5000
    poll_timeout: timedelta = timedelta(milliseconds=200)
