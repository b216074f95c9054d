"""Settings shared by every service.

Each service declares one ``Settings`` class deriving from :class:`CommonSettings` with its
own env prefix (``LINKHOP_REDIRECT_``, ``LINKHOP_MANAGEMENT_``, ``LINKHOP_STATS_``). The
connection URLs are the same variables for all of them (``LINKHOP_DATABASE_URL``,
``LINKHOP_REDIS_URL``, ``LINKHOP_KAFKA_BOOTSTRAP``), so they carry explicit aliases.
Settings objects are built once in ``main()`` and passed in; nothing reads the
environment at import time.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The local stack's loopback ports: deliberately not 5432/6379/9092 so linkhop never
# collides with (or silently talks to) a server someone already runs on the machine.
LOCAL_POSTGRES_PORT = 15432
LOCAL_REDIS_PORT = 16379
LOCAL_KAFKA_PORT = 19092
LOCAL_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_REDIRECT_PORT = 18080
DEFAULT_MANAGEMENT_PORT = 18081
DEFAULT_STATS_PORT = 18082

DEFAULT_DATABASE_URL = f"postgresql://linkhop@127.0.0.1:{LOCAL_POSTGRES_PORT}/linkhop"
DEFAULT_REDIS_URL = f"redis://127.0.0.1:{LOCAL_REDIS_PORT}/0"
DEFAULT_KAFKA_BOOTSTRAP = f"127.0.0.1:{LOCAL_KAFKA_PORT}"

CLICKS_TOPIC = "clicks"


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name)


class CommonSettings(BaseSettings):
    """Connection settings every service needs."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL, validation_alias=_alias("LINKHOP_DATABASE_URL")
    )
    redis_url: str = Field(default=DEFAULT_REDIS_URL, validation_alias=_alias("LINKHOP_REDIS_URL"))
    kafka_bootstrap: str = Field(
        default=DEFAULT_KAFKA_BOOTSTRAP, validation_alias=_alias("LINKHOP_KAFKA_BOOTSTRAP")
    )
    clicks_topic: str = Field(
        default=CLICKS_TOPIC, validation_alias=_alias("LINKHOP_CLICKS_TOPIC")
    )
    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = Field(default="INFO", validation_alias=_alias("LINKHOP_LOG_LEVEL"))
    # Postgres: bounded waits so an outage becomes a clean 503, never a hung request.
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_connect_timeout: timedelta = timedelta(seconds=3)
    db_command_timeout: timedelta = timedelta(seconds=5)
    redis_timeout: timedelta = timedelta(milliseconds=500)
