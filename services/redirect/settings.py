from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_REDIRECT_PORT, CommonSettings


class Settings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="LINKHOP_REDIRECT_", extra="ignore", frozen=True)

    port: int = DEFAULT_REDIRECT_PORT
    # Bounded in-memory queue between requests and the Kafka producer.
    event_queue_size: int = 100_000
    event_batch_size: int = 500
