"""Periods, intervals and time zones (pure functions): examples and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.stats.periods import (
    INTERVALS,
    PERIODS,
    PeriodError,
    bucket_start,
    change,
    chart,
    chart_buckets,
    default_interval,
    hour_range,
    next_bucket,
    period_window,
    resolve_tz,
)

ZONES = [UTC, ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York"),
         ZoneInfo("Asia/Kolkata"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Pacific/Apia"),
         timezone(timedelta(hours=-11)), timezone(timedelta(hours=14))]
moments = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1),
                       timezones=st.just(UTC))
zones = st.sampled_from(ZONES)
fixed_periods = st.sampled_from([p for p in PERIODS if p not in ("custom", "total")])


def test_resolve_tz() -> None:
    assert resolve_tz(None, None) is UTC
    assert resolve_tz(None, 60).utcoffset(None) == timedelta(hours=1)
    assert resolve_tz(None, -300).utcoffset(None) == timedelta(hours=-5)
    assert resolve_tz("+05:30").utcoffset(None) == timedelta(hours=5, minutes=30)
    assert resolve_tz("UTC-03").utcoffset(None) == timedelta(hours=-3)
    assert resolve_tz("Europe/Paris") == ZoneInfo("Europe/Paris")
    for bad in ("Mars/Olympus", "../etc/passwd"):
        with pytest.raises(PeriodError):
            resolve_tz(bad)
    with pytest.raises(PeriodError):
        resolve_tz(None, 24 * 60)


def test_examples_in_paris() -> None:
    paris = ZoneInfo("Europe/Paris")
    now = datetime(2026, 3, 18, 23, 30, tzinfo=UTC)  # already Thursday the 19th in Paris
    today = period_window("today", now, paris)
    assert today.start == datetime(2026, 3, 19, tzinfo=paris)
    assert today.prev_start == datetime(2026, 3, 18, tzinfo=paris)
    week = period_window("week", now, paris)
    assert week.start.date() == date(2026, 3, 16) and week.end.date() == date(2026, 3, 23)
    month = period_window("month", now, paris)
    assert (month.start.date(), month.end.date()) == (date(2026, 3, 1), date(2026, 4, 1))
    assert month.prev_start is not None and month.prev_start.date() == date(2026, 2, 1)
    last = period_window("lastmonth", now, paris)
    assert (last.start.date(), last.end.date()) == (date(2026, 2, 1), date(2026, 3, 1))
    last7 = period_window("last7", now, paris)
    assert last7.start.date() == date(2026, 3, 13) and last7.end.date() == date(2026, 3, 20)
    last30 = period_window("last30", now, paris)
    assert last30.end - last30.start == timedelta(days=30)
    custom = period_window("custom", now, paris, start_date="2026-03-01",
                           end_date="2026-03-02")
    assert (custom.start, custom.end) == (datetime(2026, 3, 1, tzinfo=paris),
                                          datetime(2026, 3, 3, tzinfo=paris))
    assert custom.prev_start == datetime(2026, 2, 27, tzinfo=paris)
    ms = period_window("custom", now, UTC, start_date=0, end_date="3600000")
    assert ms.end - ms.start == timedelta(hours=1)
    total = period_window("total", now, paris, first_data=datetime(2020, 1, 1, tzinfo=UTC))
    assert total.start == datetime(2020, 1, 1, tzinfo=UTC) and total.prev_start is None


def test_bad_periods() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(PeriodError):
        period_window("fortnight", now, UTC)
    with pytest.raises(PeriodError):
        period_window("custom", now, UTC, start_date="2026-01-02")
    with pytest.raises(PeriodError):
        period_window("custom", now, UTC, start_date="2026-01-02", end_date="2026-01-01")
    with pytest.raises(PeriodError):
        period_window("custom", now, UTC, start_date="yesterday", end_date="2026-01-01")


def test_click_at_2330_utc_counts_on_the_next_local_day() -> None:
    """A click at 23:30 UTC is 00:30 the next day in Paris (winter) and 19:30 the same
    day in New York: each caller sees it on their own day."""
    hour = datetime(2026, 1, 10, 23, 0, tzinfo=UTC)  # the rollup hour of a 23:30 click
    now = datetime(2026, 1, 11, 12, tzinfo=UTC)
    paris = period_window("today", now, ZoneInfo("Europe/Paris"))
    lo, hi = hour_range(paris.start, paris.end)
    assert lo <= hour < hi
    ny = period_window("yesterday", now, ZoneInfo("America/New_York"))
    lo, hi = hour_range(ny.start, ny.end)
    assert lo <= hour < hi
    days = chart([(hour, 1)], period_window("last7", now, ZoneInfo("Europe/Paris")), "day", 99)
    assert [x.date() for x, y in days if y] == [date(2026, 1, 11)]


@given(moments, zones, fixed_periods)
def test_windows_are_ordered_and_adjacent(now: datetime, tz: object, period: str) -> None:
    window = period_window(period, now, tz)  # type: ignore[arg-type]
    assert window.start < window.end
    assert window.prev_start is not None and window.prev_end == window.start
    assert window.prev_start < window.prev_end
    if period in ("today", "week", "month", "last7", "last30"):
        assert window.start <= now < window.end
    if period in ("yesterday", "lastmonth"):
        assert window.end <= now


@given(moments, zones, st.sampled_from(INTERVALS))
def test_buckets_contain_their_moment(moment: datetime, tz: object, interval: str) -> None:
    start = bucket_start(moment, interval, tz)  # type: ignore[arg-type]
    following = next_bucket(start, interval, tz)  # type: ignore[arg-type]
    assert start <= moment < following
    assert bucket_start(start, interval, tz) == start  # type: ignore[arg-type]


@given(moments, zones, fixed_periods, st.sampled_from(INTERVALS),
       st.lists(st.tuples(st.integers(-24 * 70, 24 * 70), st.integers(1, 9)), max_size=40))
def test_chart_sums_every_hour_of_the_window_once(
    now: datetime, tz: object, period: str, interval: str, clicks: list[tuple[int, int]]
) -> None:
    window = period_window(period, now, tz)  # type: ignore[arg-type]
    lo, hi = hour_range(window.start, window.end)
    base = lo.replace(minute=0)
    hourly = {base + timedelta(hours=h): n for h, n in clicks}
    inside = sum(n for hour, n in hourly.items() if lo <= hour < hi)
    series = chart([(h, n) for h, n in hourly.items() if lo <= h < hi], window, interval,
                   10_000)
    assert sum(y for _, y in series) == inside
    xs = [x.astimezone(UTC) for x, _ in series]  # instants: wall clocks repeat in autumn
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert len(chart_buckets(window, interval, 10_000)) == len(series)


def test_chart_point_limit_and_default_interval() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window = period_window("total", now, UTC, first_data=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(PeriodError):
        chart_buckets(window, "hour", 1000)
    assert default_interval(window) == "month"
    assert default_interval(period_window("today", now, UTC)) == "hour"
    assert default_interval(period_window("last30", now, UTC)) == "day"


def test_change() -> None:
    assert change(15, 10) == "50.00"
    assert change(5, 10) == "-50.00"
    assert change(5, 0) == "N/A"
    assert change(5, None) == "N/A"


def test_the_day_clocks_go_back_has_25_hourly_points() -> None:
    paris = ZoneInfo("Europe/Paris")
    window = period_window("today", datetime(2004, 10, 31, 12, tzinfo=UTC), paris)
    # 02:00 local happens twice: 00:00 UTC (CEST) and 01:00 UTC (CET).
    series = chart([(datetime(2004, 10, 31, 0, tzinfo=UTC), 3),
                    (datetime(2004, 10, 31, 1, tzinfo=UTC), 5)], window, "hour", 100)
    assert len(series) == 25
    assert [y for _, y in series if y] == [3, 5]
