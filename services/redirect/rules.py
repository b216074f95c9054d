"""The link rules, in the order a visitor meets them, as one pure function.

1. domain unknown or deleted; link unknown, deleted or archived -> the domain's
   not-found redirect, else a 404 page;
2. expired by date, or by its clicks limit -> the expired URL, else 410;
3. password -> the password form, unless the visitor holds a valid unlock cookie;
4. device targeting (iPhone/iPad, Android), then region, then country targeting;
5. A/B split of the default destination (the same visitor always lands on one side);
6. UTM parameters added, the visitor's query string passed on unless skipQS;
7. cloaking (a page framing the destination), else the link's redirect type, else the
   domain's default.
The handler only gathers facts (:class:`Visit`) and renders the :class:`Decision`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Literal, TypeVar

from services.redirect.urls import add_utm, is_http_url, pass_query, safe_location
from services.redirect.visitor import split_side
from shared.linkrecord import DomainRecord, LinkRecord

M = TypeVar("M")


class Outcome(StrEnum):
    REDIRECT = "redirect"
    CLOAK = "cloak"
    PASSWORD = "password"  # noqa: S105 (an outcome name, not a secret)
    EXPIRED = "expired"
    NOT_FOUND = "not_found"


# Plain (not frozen) slotted dataclasses: a frozen one costs about a microsecond more per
# construction, which the cache-hit path pays on every request.
@dataclass(slots=True)
class Visit:
    now: float
    user_agent_device: str | None = None  # "ios", "android" or None
    country: str | None = None
    region: str | None = None
    raw_query: str = ""
    visitor: str = ""
    unlocked: bool = False
    clicks: int | None = None  # the visit's number against the clicks limit; None: unknown


@dataclass(slots=True)
class Decision:
    outcome: Outcome
    status: int
    location: str | None = None  # safe for a Location header
    ab_side: Literal["a", "b"] | None = None


_NOT_FOUND_PAGE = Decision(Outcome.NOT_FOUND, 404)
_GONE_PAGE = Decision(Outcome.EXPIRED, 410)


def not_found(domain: DomainRecord | None) -> Decision:
    if domain is not None and not domain.deleted and domain.not_found_redirect:
        return Decision(Outcome.NOT_FOUND, 302, safe_location(domain.not_found_redirect))
    return _NOT_FOUND_PAGE


def is_gone(link: LinkRecord, now: float) -> bool:
    """Rules 1-2 without the clicks limit: what decides whether the visit is counted."""
    return link.deleted or link.archived or (
        link.expires_at is not None and link.expires_at <= now
    )


def expired(link: LinkRecord) -> Decision:
    if link.expired_url:
        return Decision(Outcome.EXPIRED, 302, safe_location(link.expired_url))
    return _GONE_PAGE


def decide(domain: DomainRecord | None, link: LinkRecord | None, visit: Visit) -> Decision:
    if domain is None or domain.deleted or link is None or link.deleted or link.archived:
        return not_found(domain)
    if link.expires_at is not None and link.expires_at <= visit.now:
        return expired(link)
    if (link.clicks_limit is not None and visit.clicks is not None
            and visit.clicks > link.clicks_limit):
        return expired(link)
    if link.password_hash and not visit.unlocked:
        return Decision(Outcome.PASSWORD, 200)
    url, side = _target(link, visit)
    if link.utm:
        url = add_utm(url, link.utm)
    if not link.skip_qs and visit.raw_query:
        url = pass_query(url, visit.raw_query)
    location = safe_location(url)
    if link.cloaking and is_http_url(location):
        return Decision(Outcome.CLOAK, 200, location, side)
    return Decision(Outcome.REDIRECT, link.redirect_type or domain.redirect_type, location, side)


def depends_on_visit(link: LinkRecord) -> bool:
    """Whether any rule of the link looks at the visit (time, counter, cookie, device,
    place, visitor). If not, and the query string is not passed on, the decision is a
    function of the two records alone and can be memoised."""
    return bool(
        link.password_hash or link.clicks_limit is not None or link.expires_at is not None
        or link.iphone_url or link.android_url or link.countries or link.regions
        or link.split_url
    )


class DecisionMemo(Generic[M]):
    """Decisions of links that do not depend on the visit (with whatever the handler
    derives from them once, e.g. the link's half of the click event), keyed by link id and
    the two record versions (every write takes a new number from one sequence), so a
    changed link or domain can never be answered from an old entry. Bounded by clearing."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._data: dict[tuple[int, int, int], M] = {}

    def get(self, link: LinkRecord, domain: DomainRecord) -> M | None:
        return self._data.get((link.link_id, link.version, domain.version))

    def put(self, link: LinkRecord, domain: DomainRecord, value: M) -> None:
        if len(self._data) >= self._maxsize:
            self._data.clear()
        self._data[(link.link_id, link.version, domain.version)] = value


def _target(link: LinkRecord, visit: Visit) -> tuple[str, Literal["a", "b"] | None]:
    if visit.user_agent_device == "ios" and link.iphone_url:
        return link.iphone_url, None
    if visit.user_agent_device == "android" and link.android_url:
        return link.android_url, None
    if visit.region and link.regions and visit.region in link.regions:
        return link.regions[visit.region], None
    if visit.country and link.countries and visit.country in link.countries:
        return link.countries[visit.country], None
    if link.split_url and link.split_percent:
        side = split_side(visit.visitor, link.link_id, link.split_percent)
        return (link.split_url if side == "b" else link.url), side
    return link.url, None
