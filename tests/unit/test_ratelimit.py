"""The in-process sliding window (the limiter's fallback) and the header arithmetic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.ratelimit import Decision, LocalLimiter, RateRule


def test_admits_the_limit_then_refuses_until_the_oldest_call_leaves() -> None:
    limiter, rule = LocalLimiter(), RateRule(limit=3, period=10)
    assert [limiter.check("k", rule, now=t).allowed for t in (0, 1, 2, 3)] == [
        True, True, True, False]
    refused = limiter.check("k", rule, now=9.5)
    assert not refused.allowed and refused.reset_after == 0.5 and refused.remaining == 0
    assert limiter.check("k", rule, now=10.0).allowed  # the call at 0 left the window
    assert not limiter.check("k", rule, now=10.5).allowed
    assert limiter.check("other", rule, now=10.5).allowed  # buckets are separate


def test_buckets_are_bounded_least_recently_used_first() -> None:
    limiter, rule = LocalLimiter(max_buckets=3), RateRule(limit=1, period=60)
    for name in ("a", "b", "c"):
        limiter.check(name, rule, now=0)
    limiter.check("a", rule, now=1)  # a is now the most recent
    limiter.check("d", rule, now=2)
    assert len(limiter) == 3
    assert not limiter.check("a", rule, now=3).allowed  # kept
    assert limiter.check("b", rule, now=3).allowed  # dropped, so it starts afresh


def test_headers() -> None:
    ok = Decision(allowed=True, limit=5, remaining=4, reset_after=0.2, now=1000.5)
    assert ok.headers() == {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
                            "X-RateLimit-Reset": "1001"}
    refused = Decision(allowed=False, limit=5, remaining=0, reset_after=2.1, now=1000.0)
    assert refused.headers()["Retry-After"] == "3"
    assert Decision(allowed=False, limit=1, remaining=0, reset_after=0.0, now=0).retry_after == 1


@given(
    limit=st.integers(min_value=1, max_value=8),
    period=st.floats(min_value=0.5, max_value=5),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=60),
)
def test_never_more_than_the_limit_in_any_window(limit: int, period: float, gaps: list[float]
                                                 ) -> None:
    limiter, rule = LocalLimiter(), RateRule(limit=limit, period=period)
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap
        decision = limiter.check("k", rule, now=now)
        if decision.allowed:
            admitted.append(now)
        assert 0 <= decision.remaining <= limit
    for i, start in enumerate(admitted):
        inside = [t for t in admitted[i:] if t < start + period]
        assert len(inside) <= limit
