"""Which rollup rows answer a range of UTC hours, as a pure function.

Every click is counted in three grains at once (per UTC hour, per UTC day, all time), so
a range can be answered from any mix of them, exactly. :func:`split` reads whole UTC
days from the daily rollups and only the hours of the days that are cut (by the range's
ends, or by a chart bucket boundary that is not a UTC midnight, as a local midnight of
any zone other than UTC is) from the hourly ones: a domain's 30 days in UTC are 30 daily
rows, not 720 hourly ones. ``whole`` says the range holds every click of the scope, so
the all-time totals answer it in one row per key.

A cut day can also be read as its daily row *less* the hours outside the part it stands
for (a "stand-in"): ``today`` in Europe/Paris is the UTC day's row less the two hours
after 22:00, which hold no clicks yet, instead of up to 22 hourly rows. Given the
scope's first and last clicked hours, :func:`split` picks, per cut day, whichever reads
fewer hours that can hold clicks; the sum is the same either way.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Spans:
    lo: datetime  # the UTC hours [lo, hi) read
    hi: datetime
    hours: tuple[tuple[datetime, datetime], ...] = ()  # hourly rows [a, b), each at its hour
    days: tuple[tuple[date, date], ...] = ()  # daily rows [a, b), each at its UTC midnight
    whole: bool = field(default=False)  # [lo, hi) holds all of the scope's clicks
    # Stand-ins: (day, at): the day's daily row, counted at instant ``at`` (the start of
    # the part of the day it stands for) ...
    stand_ins: tuple[tuple[date, datetime], ...] = ()
    # ... less these hourly rows [a, b), subtracted at ``at``: (a, b, at).
    minus: tuple[tuple[datetime, datetime, datetime], ...] = ()

    @property
    def day_set(self) -> list[tuple[date, date]]:
        """Every daily row read, whole days and stand-ins, as sorted ranges [a, b)."""
        ranges = sorted([*self.days, *((d, d + DAY) for d, _ in self.stand_ins)])
        merged: list[tuple[date, date]] = []
        for a, b in ranges:
            if merged and merged[-1][1] == a:
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return merged


def midnight(day: date) -> datetime:
    """The UTC midnight that starts ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC)


def _weight(a: datetime, b: datetime, data: tuple[datetime, datetime] | None) -> int:
    """How many of the hours [a, b) can hold clicks (those from the first clicked hour
    to the last); every hour when that is unknown."""
    if data is not None:
        a, b = max(a, data[0]), min(b, data[1] + HOUR)
    return max((b - a) // HOUR, 0)


def split(lo: datetime, hi: datetime, cuts: Iterable[datetime] = (), *,
          whole: bool = False, data: tuple[datetime | None, datetime | None] | None = None
          ) -> Spans:
    """``[lo, hi)`` (UTC, on the hour) as whole days and the hours of cut days; with
    ``data`` (the scope's first and last clicked hours), cut days may be stand-ins."""
    lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
    if lo >= hi:
        return Spans(lo, hi, whole=whole)
    known = None
    if data is not None and data[0] is not None and data[1] is not None:
        known = (data[0], data[1])
    points = sorted({c.astimezone(UTC) for c in cuts if lo < c < hi})
    hours: list[tuple[datetime, datetime]] = []
    days: list[tuple[date, date]] = []
    stand_ins: list[tuple[date, datetime]] = []
    minus: list[tuple[datetime, datetime, datetime]] = []

    def add_hours(a: datetime, b: datetime) -> None:
        if hours and hours[-1][1] == a:
            a = hours.pop()[0]
        hours.append((a, b))

    day = lo.date()
    while midnight(day) < hi:
        start, end = midnight(day), midnight(day + DAY)
        a, b = max(lo, start), min(hi, end)
        after = bisect_right(points, a)
        inner = points[after:bisect_left(points, b, after)]
        if (a, b) == (start, end) and not inner:
            # Whole: so is every day up to the next one a point or ``hi`` may cut, all
            # taken at once (a month's days were a tenth of a millisecond one by one).
            following = points[after].date() if after < len(points) else hi.date()
            upto = max(min(following, hi.date()), day + DAY)
            if days and days[-1][1] == day:
                days[-1] = (days[-1][0], upto)
            else:
                days.append((day, upto))
            day = upto
            continue
        edges = [a, *inner, b]
        parts = list(pairwise(edges))
        outside = [(x, y) for x, y in ((start, a), (b, end)) if x < y]
        if data is None:
            choice = None
        else:
            weights = [_weight(x, y, known) for x, y in parts]
            choice = max(range(len(parts)), key=weights.__getitem__)
            rest = sum(weights) - weights[choice]
            as_stand_in = 1 + 2 * rest + sum([_weight(x, y, known) for x, y in outside])
            if as_stand_in >= sum(weights):
                choice = None
        if choice is None:
            for x, y in parts:
                add_hours(x, y)
        else:
            at = parts[choice][0]
            stand_ins.append((day, at))
            for i, (x, y) in enumerate(parts):
                if i != choice:
                    add_hours(x, y)
                    minus.append((x, y, at))
            minus.extend((x, y, at) for x, y in outside)
        day += DAY
    return Spans(lo, hi, tuple(hours), tuple(days), whole=whole, stand_ins=tuple(stand_ins),
                 minus=tuple(minus))


def day_hours(spans: Spans, cuts: Iterable[datetime] = ()
              ) -> dict[date, dict[datetime, frozenset[int]]]:
    """The hours of every day ``spans`` does not read whole (its hours, stand-ins and
    their minus), per UTC day: {instant: the UTC hours of the day counted at it}, net of
    what stand-ins subtract. For rollups that keep a day's hours as columns of its daily
    row: the row is read once and each instant's hours added up in it, however the day
    is cut. An hour is counted at the latest of ``cuts`` (a chart's bucket bounds) at or
    before it, or at ``spans.lo``, whichever is later: an instant of its own bucket, so
    the hours of one bucket share one instant."""
    counted: dict[tuple[datetime, datetime | None], int] = {}

    def add(a: datetime, b: datetime, at: datetime | None, n: int) -> None:
        for i in range((b - a) // HOUR):
            key = (a + i * HOUR, at)
            counted[key] = counted.get(key, 0) + n

    for a, b in spans.hours:
        add(a, b, None, 1)
    for day, at in spans.stand_ins:
        add(midnight(day), midnight(day + DAY), at, 1)
    for a, b, at in spans.minus:
        add(a, b, at, -1)
    points = sorted({c.astimezone(UTC) for c in cuts})

    def instant(moment: datetime) -> datetime:
        i = bisect_right(points, moment)
        return max(points[i - 1], spans.lo) if i else spans.lo

    days: dict[date, dict[datetime, set[int]]] = {}
    for (hour, counted_at), n in counted.items():
        if n:
            assert n == 1, "spans count every hour once"
            at_day = days.setdefault(hour.date(), {})
            moment = hour if counted_at is None else counted_at
            at_day.setdefault(instant(moment), set()).add(hour.hour)
    return {day: {at: frozenset(hours) for at, hours in at_day.items()}
            for day, at_day in days.items()}


def holds_all(lo: datetime, hi: datetime, first: datetime | None, last: datetime | None
              ) -> bool:
    """Whether the hours ``[lo, hi)`` hold every hour from ``first`` to ``last`` (the
    scope's first and last clicked hours; None when it has none)."""
    return first is None or last is None or (lo <= first and last < hi)


def days_starting(lo: datetime, hi: datetime) -> tuple[date, date]:
    """The UTC days ``[first, end)`` whose midnight is in ``[lo, hi)``."""
    lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
    first = lo.date() if lo == midnight(lo.date()) else lo.date() + DAY
    end = hi.date() if hi == midnight(hi.date()) else hi.date() + DAY
    return first, end


def hours_outside(lo: datetime, hi: datetime, covered: Iterable[tuple[datetime, datetime]]
                  ) -> list[tuple[datetime, datetime]]:
    """``[lo, hi)`` less the ``covered`` ranges (disjoint, each inside it), as sorted
    ranges."""
    lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
    ranges: list[tuple[datetime, datetime]] = []
    start = lo
    for a, b in sorted(covered):
        if start < a:
            ranges.append((start, a))
        start = b
    if start < hi:
        ranges.append((start, hi))
    return ranges
