"""Periods, chart intervals and time zones as pure functions.

Rollups are stored per UTC hour (and summed per UTC day and all time, see
:mod:`services.stats.spans`). A period is resolved in the caller's time zone into
``[start, end)``; the hours read are those whose start lies in
``[floor_hour(start), floor_hour(end))``, so adjacent periods split the hours exactly
(for zones whose offset is not a whole hour, such as +05:30, a boundary is the UTC hour
containing the local midnight: hourly rollups cannot be split further). Chart buckets
are turned into sorted UTC bounds once (:func:`bucket_bounds`), so summing rows into
buckets is a search, in SQL or here, with no time zone arithmetic per row.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Period = Literal["today", "yesterday", "total", "week", "month", "lastmonth", "last7",
                 "last30", "custom"]
Interval = Literal["hour", "day", "week", "month"]
PERIODS: tuple[str, ...] = get_args(Period)
INTERVALS: tuple[str, ...] = get_args(Interval)

_MAX_OFFSET_MINUTES = 18 * 60
_OFFSET_RE = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?$")


class PeriodError(ValueError):
    """The caller asked for a period, interval or time zone that does not exist."""


@dataclass(frozen=True)
class Window:
    start: datetime  # aware, in the caller's zone
    end: datetime
    prev_start: datetime | None  # the period before, for the *Change fields
    prev_end: datetime | None
    tz: tzinfo


def resolve_tz(tz: str | None = None, tz_offset: int | None = None) -> tzinfo:
    """A zone from a name (``Europe/Paris``), an offset string (``+05:30``) or
    ``tzOffset`` minutes east of UTC (``60`` is UTC+1); UTC when none is given."""
    if tz:
        match = _OFFSET_RE.match(tz.strip())
        if match:
            sign, hours, minutes = match.groups()
            total = int(hours) * 60 + int(minutes or 0)
            return _fixed(-total if sign == "-" else total)
        try:
            return ZoneInfo(tz.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise PeriodError(f"unknown time zone: {tz}") from None
    if tz_offset is not None:
        return _fixed(tz_offset)
    return UTC


def _fixed(minutes: int) -> tzinfo:
    if abs(minutes) > _MAX_OFFSET_MINUTES:
        raise PeriodError("time zone offset must be within ±18 hours")
    return UTC if minutes == 0 else timezone(timedelta(minutes=minutes))


def tz_name(tz: tzinfo) -> str:
    if isinstance(tz, ZoneInfo):
        return tz.key
    name = tz.tzname(None)
    return "UTC" if name in (None, "UTC") else str(name)


def local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def parse_moment(value: str | int, tz: tzinfo, *, is_end: bool) -> datetime:
    """``YYYY-MM-DD`` (a local day; an end date includes that whole day), an ISO date
    time (naive means local), or epoch milliseconds."""
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        try:
            return datetime.fromtimestamp(int(value) / 1000, UTC).astimezone(tz)
        except (ValueError, OverflowError, OSError):
            raise PeriodError(f"epoch milliseconds out of range: {value!r}") from None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return local_midnight(day + timedelta(days=1) if is_end else day, tz)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PeriodError(f"not a date: {value!r} (use YYYY-MM-DD or ISO 8601)") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def period_window(
    period: str,
    now: datetime,
    tz: tzinfo,
    *,
    start_date: str | int | None = None,
    end_date: str | int | None = None,
    first_data: datetime | None = None,
) -> Window:
    """``[start, end)`` of ``period`` in zone ``tz`` at ``now``, and the period before."""
    today = now.astimezone(tz).date()
    midnight = local_midnight(today, tz)
    tomorrow = local_midnight(today + timedelta(days=1), tz)

    def days(first: date, after_last: date) -> tuple[datetime, datetime]:
        return local_midnight(first, tz), local_midnight(after_last, tz)

    if period == "today":
        start, end = midnight, tomorrow
        prev = days(today - timedelta(days=1), today)
    elif period == "yesterday":
        start, end = days(today - timedelta(days=1), today)
        prev = days(today - timedelta(days=2), today - timedelta(days=1))
    elif period in ("last7", "last30"):
        n = 7 if period == "last7" else 30
        start, end = days(today - timedelta(days=n - 1), today + timedelta(days=1))
        prev = days(today - timedelta(days=2 * n - 1), today - timedelta(days=n - 1))
    elif period == "week":
        monday = today - timedelta(days=today.weekday())
        start, end = days(monday, monday + timedelta(days=7))
        prev = days(monday - timedelta(days=7), monday)
    elif period in ("month", "lastmonth"):
        first = today.replace(day=1)
        if period == "lastmonth":
            first = _add_months(first, -1)
        start, end = days(first, _add_months(first, 1))
        prev = days(_add_months(first, -1), first)
    elif period == "total":
        begin = first_data.astimezone(tz) if first_data is not None else midnight
        return Window(min(begin, midnight), tomorrow, None, None, tz)
    elif period == "custom":
        if start_date is None or end_date is None:
            raise PeriodError("period custom needs startDate and endDate")
        start = parse_moment(start_date, tz, is_end=False)
        end = parse_moment(end_date, tz, is_end=True)
        if end <= start:
            raise PeriodError("endDate must be after startDate")
        prev = (start - (end - start), start)
    else:
        raise PeriodError(f"unknown period {period!r}; one of {', '.join(PERIODS)}")
    return Window(start, end, prev[0], prev[1], tz)


def floor_hour_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The UTC hours ``[lo, hi)`` a local ``[start, end)`` reads."""
    return floor_hour_utc(start), floor_hour_utc(end)


def bucket_start(moment: datetime, interval: str, tz: tzinfo) -> datetime:
    """The start (in ``tz``) of the chart bucket holding ``moment``; weeks start Monday."""
    local = moment.astimezone(tz)
    if interval == "hour":
        # In a DST fold or a fractional zone the UTC hour is the honest bucket.
        return floor_hour_utc(moment).astimezone(tz)
    day = local.date()
    if interval == "day":
        return local_midnight(day, tz)
    if interval == "week":
        return local_midnight(day - timedelta(days=day.weekday()), tz)
    if interval == "month":
        return local_midnight(day.replace(day=1), tz)
    raise PeriodError(f"unknown interval {interval!r}; one of {', '.join(INTERVALS)}")


def next_bucket(start: datetime, interval: str, tz: tzinfo) -> datetime:
    if interval == "hour":
        return (start.astimezone(UTC) + timedelta(hours=1)).astimezone(tz)
    day = start.astimezone(tz).date()
    if interval == "day":
        return local_midnight(day + timedelta(days=1), tz)
    if interval == "week":
        return local_midnight(day + timedelta(days=7), tz)
    return local_midnight(_add_months(day, 1), tz)


def chart_buckets(window: Window, interval: str, limit: int) -> list[datetime]:
    """Every bucket start from the one holding ``window.start`` up to the end of the
    period's hours. (From the bucket of ``window.start`` itself, not of its UTC hour: in
    a zone whose midnight falls inside an hour, India at :30, "today" by day is one
    bucket, not yesterday's too for the hour that holds the midnight.)"""
    hi = hour_range(window.start, window.end)[1]
    current = bucket_start(window.start, interval, window.tz)
    buckets: list[datetime] = []
    while current < hi:
        buckets.append(current)
        if len(buckets) > limit:
            raise PeriodError(
                f"the chart would have more than {limit} points; use a longer interval")
        current = next_bucket(current, interval, window.tz)
    return buckets


def default_interval(window: Window) -> Interval:
    span = window.end - window.start
    if span <= timedelta(days=2):
        return "hour"
    if span <= timedelta(days=92):
        return "day"
    if span <= timedelta(days=730):
        return "week"
    return "month"


def ceil_hour_utc(moment: datetime) -> datetime:
    # Compared in UTC: under PEP 495 an aware time in a DST fold (the repeated hour)
    # never equals a time of another zone, even the same instant.
    utc = moment.astimezone(UTC)
    floor = floor_hour_utc(utc)
    return floor if floor == utc else floor + timedelta(hours=1)


def bucket_bounds(buckets: list[datetime], interval: str, tz: tzinfo) -> list[datetime]:
    """The UTC hour at which each bucket's rollup hours begin, and the end of the last:
    an hour belongs to the bucket its start lies in, so a bucket that starts inside an
    hour (a local midnight at :30 UTC) begins with the next one. Bucket ``i`` holds the
    hours ``[bounds[i], bounds[i + 1])``: a sorted list of instants, which SQL
    (``width_bucket``) and :func:`chart` (``bisect``) both search without any per-hour
    time zone arithmetic."""
    if not buckets:
        return []
    ends = [*buckets, next_bucket(buckets[-1], interval, tz)]
    return [ceil_hour_utc(b) for b in ends]


def chart_bounds(window: Window, buckets: list[datetime], interval: str) -> list[datetime]:
    """:func:`bucket_bounds` of the chart of ``window``, with the outer two at the
    period's own hours (:func:`hour_range`): the chart then holds exactly the hours the
    period reads. The first bucket starts with the hour holding a midnight at :30 that
    the period reads, and a period that starts inside a bucket (a custom start at 14:00,
    by day) leaves that bucket's earlier hours to the previous period (bucket 0)."""
    bounds = bucket_bounds(buckets, interval, window.tz)
    if bounds:
        bounds[0], bounds[-1] = hour_range(window.start, window.end)
    return bounds


def chart(hourly: Iterable[tuple[datetime, int]], window: Window, interval: str,
          limit: int) -> list[tuple[datetime, int]]:
    """Hourly UTC counts summed into the caller's buckets, empty buckets included."""
    buckets = chart_buckets(window, interval, limit)
    bounds = chart_bounds(window, buckets, interval)
    sums = [0] * len(buckets)
    for hour, clicks in hourly:
        i = bisect_right(bounds, hour) - 1
        if 0 <= i < len(sums):
            sums[i] += clicks
    return list(zip(buckets, sums, strict=True))


def change(current: int, previous: int | None) -> str:
    """Short.io's ``*Change``: the percent change against the previous period, as a
    string; "N/A" when there is nothing to compare with."""
    if previous is None or previous == 0:
        return "N/A"
    return f"{(current - previous) * 100 / previous:.2f}"
