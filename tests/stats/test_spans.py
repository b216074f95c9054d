"""Which rollup rows answer a range (pure): every hour read exactly once, whole days only
where no chart bucket starts inside them; and the bisect chart against the per-hour
definition of a bucket."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from services.stats.periods import (
    INTERVALS,
    PERIODS,
    bucket_bounds,
    bucket_start,
    chart,
    chart_bounds,
    chart_buckets,
    hour_range,
    period_window,
)
from services.stats.spans import (
    Spans,
    day_hours,
    days_starting,
    holds_all,
    hours_outside,
    midnight,
    split,
)

HOUR = timedelta(hours=1)
ZONES = [UTC, ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Kolkata"), ZoneInfo("Asia/Kathmandu"),
         ZoneInfo("Australia/Lord_Howe"), ZoneInfo("America/St_Johns"),
         timezone(timedelta(hours=-11)), timezone(timedelta(hours=14))]
hours = st.integers(0, 24 * 200).map(lambda h: datetime(2025, 1, 1, tzinfo=UTC) + h * HOUR)
fixed_periods = st.sampled_from([p for p in PERIODS if p not in ("custom", "total")])
moments = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1),
                       timezones=st.just(UTC))


def hours_read(spans: Spans) -> list[datetime]:
    read = []
    for a, b in spans.hours:
        read += [a + i * HOUR for i in range((b - a) // HOUR)]
    for first, after in spans.days:
        start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        read += [start + i * HOUR for i in range((after - first).days * 24)]
    return sorted(read)


@given(hours, st.integers(0, 24 * 90), st.lists(hours, max_size=12))
def test_every_hour_is_read_once(lo: datetime, length: int, cuts: list[datetime]) -> None:
    hi = lo + length * HOUR
    spans = split(lo, hi, cuts)
    assert hours_read(spans) == [lo + i * HOUR for i in range(length)]
    for first, after in spans.days:  # no bucket starts strictly inside a whole day
        start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(after, datetime.min.time(), tzinfo=UTC)
        assert not any(start < c < end and c.hour != 0 for c in cuts)
    assert all(a < b for a, b in spans.hours) and all(a < b for a, b in spans.days)


def test_examples() -> None:
    lo = datetime(2026, 3, 1, 22, tzinfo=UTC)
    hi = datetime(2026, 3, 5, 3, tzinfo=UTC)
    assert split(lo, hi) == Spans(lo, hi, ((lo, datetime(2026, 3, 2, tzinfo=UTC)),
                                           (datetime(2026, 3, 5, tzinfo=UTC), hi)),
                                  ((date(2026, 3, 2), date(2026, 3, 5)),))
    # A bucket starting at 23:00 UTC (midnight in Paris) makes its day hourly.
    cut = split(lo, hi, [datetime(2026, 3, 3, 23, tzinfo=UTC)])
    assert cut.days == ((date(2026, 3, 2), date(2026, 3, 3)), (date(2026, 3, 4), date(2026, 3, 5)))
    midnight = split(lo, hi, [datetime(2026, 3, 3, tzinfo=UTC)])
    assert midnight.days == ((date(2026, 3, 2), date(2026, 3, 5)),)
    assert split(lo, lo).hours == () and split(lo, lo).days == ()
    assert holds_all(lo, hi, None, None)
    assert holds_all(lo, hi, lo, hi - HOUR) and not holds_all(lo, hi, lo, hi)


def reference_chart(hourly_counts: list[tuple[datetime, int]], buckets: list[datetime],
                    interval: str, tz: object) -> list[int]:
    """The definition: an hour of the period belongs to the bucket holding its start;
    the period's first hour, when it starts before the first bucket (a midnight at :30
    inside it), to the first bucket."""
    index = {b.astimezone(UTC): i for i, b in enumerate(buckets)}
    sums = [0] * len(buckets)
    for hour, clicks in hourly_counts:
        i = index.get(bucket_start(hour, interval, tz).astimezone(UTC))  # type: ignore[arg-type]
        if i is None and buckets and hour < buckets[0]:
            i = 0
        if i is not None:
            sums[i] += clicks
    return sums


@given(moments, st.sampled_from(ZONES), fixed_periods, st.sampled_from(INTERVALS),
       st.lists(st.tuples(st.integers(0, 24 * 62), st.integers(1, 9)), max_size=60))
def test_bounds_put_every_hour_in_its_bucket(
    now: datetime, tz: object, period: str, interval: str, clicks: list[tuple[int, int]]
) -> None:
    window = period_window(period, now, tz)  # type: ignore[arg-type]
    lo, hi = hour_range(window.start, window.end)
    counts = [(lo + h * HOUR, n) for h, n in clicks if lo + h * HOUR < hi]
    buckets = chart_buckets(window, interval, 10_000)
    expected = reference_chart(counts, buckets, interval, tz)
    assert [y for _, y in chart(counts, window, interval, 10_000)] == expected
    bounds = chart_bounds(window, buckets, interval)
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)
    assert bounds[0] == lo and bounds[-1] == hi  # the chart holds the period's hours
    # Summing the rows of split(lo, hi, bounds) per bucket gives the same chart.
    spans = split(lo, hi, bounds)
    by_day: dict[date, int] = {}
    for hour, n in counts:
        by_day[hour.date()] = by_day.get(hour.date(), 0) + n
    sums = [0] * len(buckets)
    for hour, n in counts:
        if any(a <= hour < b for a, b in spans.hours):
            sums[sum(b <= hour for b in bounds[:-1]) - 1] += n
    for first, after in spans.days:
        for offset in range((after - first).days):
            day = first + timedelta(days=offset)
            start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
            sums[sum(b <= start for b in bounds[:-1]) - 1] += by_day.get(day, 0)
    assert sums == expected


def test_a_day_of_a_half_hour_zone_is_one_bucket_holding_all_its_hours() -> None:
    """India's midnight is 18:30 UTC: "today" reads the UTC hours from 18:00, and its
    chart by day is today alone, the 18:00 hour included (not also yesterday's bucket
    for that hour, nor that hour left to the previous period)."""
    kolkata = ZoneInfo("Asia/Kolkata")
    window = period_window("today", datetime(2026, 11, 21, 12, tzinfo=UTC), kolkata)
    lo, hi = hour_range(window.start, window.end)
    assert lo == datetime(2026, 11, 20, 18, tzinfo=UTC)
    buckets = chart_buckets(window, "day", 10_000)
    assert buckets == [datetime(2026, 11, 21, tzinfo=kolkata)]
    assert chart_bounds(window, buckets, "day") == [lo, hi]
    assert chart([(lo, 3), (hi - HOUR, 4)], window, "day", 10_000) == [(buckets[0], 7)]
    last30 = period_window("last30", datetime(2026, 11, 21, 12, tzinfo=UTC), kolkata)
    assert len(chart_buckets(last30, "day", 10_000)) == 30


def test_hour_bounds_across_the_repeated_hour_are_distinct() -> None:
    """Paris, 28 October 2007: 02:00 comes twice. Both hour buckets begin at their own
    UTC hour (a fold-aware time compared across zones once made them collide)."""
    paris = ZoneInfo("Europe/Paris")
    window = period_window("today", datetime(2007, 10, 27, 22, tzinfo=UTC), paris)
    bounds = bucket_bounds(chart_buckets(window, "hour", 10_000), "hour", paris)
    assert bounds == sorted(set(bounds)) and len(bounds) == 26


def contributions(spans: Spans) -> dict[tuple[datetime, datetime], int]:
    """{(hour, instant it is counted at): how many times}: hourly rows at their hour,
    daily rows' hours at the day's midnight or at a stand-in's instant, less the
    subtracted hours."""
    counted: dict[tuple[datetime, datetime], int] = {}

    def add(hour: datetime, at: datetime, n: int) -> None:
        counted[(hour, at)] = counted.get((hour, at), 0) + n

    for a, b in spans.hours:
        for i in range((b - a) // HOUR):
            add(a + i * HOUR, a + i * HOUR, 1)
    for first, after in spans.days:
        for d in range((after - first).days):
            start = datetime.combine(first + timedelta(days=d), datetime.min.time(), tzinfo=UTC)
            for i in range(24):
                add(start + i * HOUR, start, 1)
    for day, at in spans.stand_ins:
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        for i in range(24):
            add(start + i * HOUR, at, 1)
    for a, b, at in spans.minus:
        for i in range((b - a) // HOUR):
            add(a + i * HOUR, at, -1)
    return {k: n for k, n in counted.items() if n}


@given(hours, st.integers(0, 24 * 40), st.lists(hours, max_size=12),
       st.one_of(st.none(), st.tuples(hours, hours)))
def test_stand_ins_count_every_hour_once_in_its_bucket(
    lo: datetime, length: int, cuts: list[datetime], data: tuple[datetime, datetime] | None
) -> None:
    """With the scope's clicked hours known, a cut day may be read as its daily row less
    the hours outside its part: every hour of [lo, hi) must still count once, at an
    instant of its own bucket (between the same two cuts), and no other hour at all."""
    hi = lo + length * HOUR
    first, last = (min(data), max(data)) if data else (None, None)
    spans = split(lo, hi, cuts, data=(first, last))
    counted = contributions(spans)
    assert sorted(hour for hour, _ in counted) == [lo + i * HOUR for i in range(length)]
    assert all(n == 1 for n in counted.values())
    bounds = sorted({c for c in cuts if lo < c < hi} | {lo, hi})
    for hour, at in counted:  # the instant lies between the same bounds as the hour
        assert sum(b <= hour for b in bounds) == sum(b <= at for b in bounds)
    # Without the scope's hours (distinct counts), every cut day is read hour by hour.
    assert split(lo, hi, cuts).stand_ins == () and split(lo, hi, cuts).minus == ()


def test_stand_in_example() -> None:
    """Today in Europe/Paris at 10:00 UTC: yesterday's last two hours, and today's daily
    row less the two hours after 22:00 (which hold no clicks yet)."""
    lo, hi = datetime(2026, 11, 20, 23, tzinfo=UTC), datetime(2026, 11, 21, 23, tzinfo=UTC)
    first, now = datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 21, 10, tzinfo=UTC)
    spans = split(lo, hi, data=(first, now))
    assert spans.hours == ((lo, datetime(2026, 11, 21, tzinfo=UTC)),)
    assert spans.stand_ins == ((date(2026, 11, 21), datetime(2026, 11, 21, tzinfo=UTC)),)
    assert spans.minus == ((hi, datetime(2026, 11, 22, tzinfo=UTC),
                            datetime(2026, 11, 21, tzinfo=UTC)),)
    assert spans.day_set == [(date(2026, 11, 21), date(2026, 11, 22))]


@given(hours, st.integers(0, 24 * 40), st.lists(hours, max_size=12),
       st.one_of(st.none(), st.tuples(hours, hours)), st.booleans())
def test_day_hours_count_every_cut_hour_once_in_its_bucket(
    lo: datetime, length: int, cuts: list[datetime], data: tuple[datetime, datetime] | None,
    chart: bool,
) -> None:
    """Read from hour columns, the days spans do not read whole give every one of their
    hours of [lo, hi) once (stand-ins net of what they subtract), each at an instant of
    its own bucket, not before lo; without cuts (a ranking), all at lo."""
    hi = lo + length * HOUR
    first, last = (min(data), max(data)) if data else (None, None)
    spans = split(lo, hi, cuts, data=(first, last))
    counted = day_hours(spans, cuts if chart else [])
    whole = set(hours_read(Spans(lo, hi, days=spans.days)))
    seen = []
    bounds = sorted({c for c in cuts if lo < c < hi} | {lo, hi})
    for day, at_hours in counted.items():
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        for at, day_hours_at in at_hours.items():
            assert day_hours_at and at >= lo
            for h in day_hours_at:
                hour = midnight + h * HOUR
                seen.append(hour)
                if chart:
                    assert sum(b <= hour for b in bounds) == sum(b <= at for b in bounds)
                else:
                    assert at == lo
    assert sorted(seen) == [lo + i * HOUR for i in range(length) if lo + i * HOUR not in whole]


def test_day_hours_example() -> None:
    """Asia/Kolkata by day: a UTC day cut at 19:00 gives its hours before 19:00 to one
    bucket and the rest to the next, each at the bucket's start (or at lo)."""
    lo, hi = datetime(2026, 11, 19, 19, tzinfo=UTC), datetime(2026, 11, 21, 19, tzinfo=UTC)
    cuts = [lo, datetime(2026, 11, 20, 19, tzinfo=UTC), hi]
    spans = split(lo, hi, cuts, data=(datetime(2026, 8, 1, tzinfo=UTC), hi))
    counted = day_hours(spans, cuts)
    assert counted[date(2026, 11, 20)] == {lo: frozenset(range(19)),
                                           cuts[1]: frozenset(range(19, 24))}
    assert counted[date(2026, 11, 19)] == {lo: frozenset(range(19, 24))}
    assert counted[date(2026, 11, 21)] == {cuts[1]: frozenset(range(19))}


@given(st.integers(0, 24 * 40), st.integers(0, 24 * 40), st.sets(st.integers(0, 45)),
       st.integers(0, 24))
def test_hours_outside_covered_days_are_the_rest_of_the_range(
        start: int, length: int, chosen: set[int], through: int) -> None:
    """The filter rollups' days (each from its midnight to its marker's ``through``) and
    the hours read from the facts are the range's hours, each once."""
    base = datetime(2026, 3, 1, tzinfo=UTC)
    lo = base + timedelta(hours=start)
    hi = lo + timedelta(hours=length)
    first, end = days_starting(lo, hi)
    days = [first + timedelta(days=n) for n in sorted(chosen)
            if first + timedelta(days=n) < end]
    assert all(lo <= midnight(d) < hi for d in days)
    covered = [(midnight(d), min(midnight(d) + timedelta(hours=max(through, 1)), hi))
               for d in days]
    rest = hours_outside(lo, hi, covered)
    hours = [a + timedelta(hours=i) for a, b in [*covered, *rest]
             for i in range((b - a) // timedelta(hours=1))]
    assert sorted(hours) == [lo + timedelta(hours=i) for i in range(length)]
    assert rest == sorted(rest)
