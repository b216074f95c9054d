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
    # How long the group waits for a silent (crashed) member before giving its partitions
    # to the others; the broker's floor is group.min.session.timeout.ms (6 s by default).
    kafka_session_timeout: timedelta = timedelta(seconds=10)
    # Invalid events go to "<clicks topic><suffix>" with the reason in a header.
    dead_letter_suffix: str = ".dlq"
    # After a failed batch (database or Kafka away) the consumer waits, doubling up to
    # the maximum, then resumes from the positions stored in Postgres.
    retry_initial: timedelta = timedelta(milliseconds=200)
    retry_max: timedelta = timedelta(seconds=10)
    # The raw click log ("last clicks") keeps this long; rollups are kept forever.
    raw_click_retention: timedelta = timedelta(days=30)
    cleanup_interval: timedelta = timedelta(minutes=10)
    cleanup_batch: int = 10_000
    # Filter rollups (services/stats/filter_rollups.py): how often stale days are looked
    # for, how many are built at most before the next look, and how long after an hour
    # ends it is built (the clicks still on their way for it have arrived by then).
    filter_rollup_interval: timedelta = timedelta(minutes=1)
    filter_rollup_days: int = 50
    filter_rollup_settle: timedelta = timedelta(minutes=5)
    # Month carry (services/stats/month_carry.py): how often stale months are looked
    # for, and how many are copied at most before the next look.
    month_carry_interval: timedelta = timedelta(minutes=1)
    month_carry_months: int = 12
    # Statistics API: the longest breakdown list and chart an answer may carry.
    top_limit: int = 10
    max_chart_points: int = 5000

    @property
    def dead_letter_topic(self) -> str:
        return self.clicks_topic + self.dead_letter_suffix
