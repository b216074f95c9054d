"""Which rollup rows answer a range of UTC hours, as a pure function.

Every click is counted in three grains at once (per UTC hour, per UTC day, all time), so
a range can be answered from any mix of them, exactly. :func:`split` reads whole UTC
days from the daily rollups and only the hours of the days that are cut (by the range's
ends, or by a chart bucket boundary that is not a UTC midnight, as a local midnight of
any zone other than UTC is) from the hourly ones: a domain's 30 days in UTC are 30 daily
rows, not 720 hourly ones. ``whole`` says the range holds every click of the scope, so
the all-time totals answer it in one row per key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True)
class Spans:
    lo: datetime  # the UTC hours [lo, hi) read
    hi: datetime
    hours: tuple[tuple[datetime, datetime], ...] = ()  # hourly rows [a, b)
    days: tuple[tuple[date, date], ...] = ()  # daily rows [a, b)
    whole: bool = field(default=False)  # [lo, hi) holds all of the scope's clicks


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _ceil_day(moment: datetime) -> date:
    day = moment.date()
    return day if moment == _midnight(day) else day + timedelta(days=1)


def split(lo: datetime, hi: datetime, cuts: Iterable[datetime] = (), *,
          whole: bool = False) -> Spans:
    """``[lo, hi)`` (UTC, on the hour) as whole days and the hours of cut days."""
    lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
    if lo >= hi:
        return Spans(lo, hi, whole=whole)
    first, last = _ceil_day(lo), hi.date()  # the whole days are [first, last)
    if first >= last:
        return Spans(lo, hi, ((lo, hi),), whole=whole)
    cut = sorted({c.astimezone(UTC).date() for c in cuts
                  if _midnight(first) < c < _midnight(last)
                  and c.astimezone(UTC).timetz() != time(tzinfo=UTC)})
    hours: list[tuple[datetime, datetime]] = []
    days: list[tuple[date, date]] = []

    def add_hours(a: datetime, b: datetime) -> None:
        if hours and hours[-1][1] == a:
            a = hours.pop()[0]
        hours.append((a, b))

    if lo < _midnight(first):
        add_hours(lo, _midnight(first))
    cursor = first
    for day in cut:
        if cursor < day:
            days.append((cursor, day))
        add_hours(_midnight(day), _midnight(day + timedelta(days=1)))
        cursor = day + timedelta(days=1)
    if cursor < last:
        days.append((cursor, last))
    if _midnight(last) < hi:
        add_hours(_midnight(last), hi)
    return Spans(lo, hi, tuple(hours), tuple(days), whole=whole)


def holds_all(lo: datetime, hi: datetime, first: datetime | None, last: datetime | None
              ) -> bool:
    """Whether the hours ``[lo, hi)`` hold every hour from ``first`` to ``last`` (the
    scope's first and last clicked hours; None when it has none)."""
    return first is None or last is None or (lo <= first and last < hi)
