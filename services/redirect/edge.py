"""Everything a request needs, gathered in one object (one app lookup per request)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field

from services.redirect.cache import AnswerMemo
from services.redirect.clicks import LinkFacts
from services.redirect.events import ClickEmitter
from services.redirect.geo import GeoLocator, ProxyTrust
from services.redirect.metrics import Counters
from services.redirect.resolve import Resolver
from services.redirect.rules import Decision, DecisionMemo
from services.redirect.settings import Settings
from services.redirect.unlock import AttemptLimiter

log = logging.getLogger(__name__)

# A memoised decision, with the link's half of its click event (made once per decision)
# and, when it is a plain redirect, its response headers.
Answer = tuple[Decision, LinkFacts, dict[str, str] | None]
# A redirect that depends on the records alone, by (Host header, raw path): its status,
# response headers, the decoded link path, the link's event facts, and the domain's
# hide_referer and hide_visitor_ip. See handlers.redirect.
HotAnswer = tuple[int, dict[str, str], str, LinkFacts, bool, bool]


def derive_key(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def service_secret(settings: Settings) -> bytes:
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode()
    log.warning("LINKHOP_REDIRECT_SECRET is not set: using a random secret for this process "
                "(unlock cookies and visitor hashes will not survive a restart)")
    return secrets.token_bytes(32)


@dataclass
class Edge:
    settings: Settings
    resolver: Resolver
    emitter: ClickEmitter
    geo: GeoLocator
    trust: ProxyTrust
    unlock_key: bytes
    visitor_key: bytes
    attempts: AttemptLimiter
    scans: AttemptLimiter  # not-found answers per client
    counters: Counters = field(default_factory=Counters)
    decisions: DecisionMemo[Answer] = field(default_factory=lambda: DecisionMemo(10_000))
    answers: AnswerMemo[HotAnswer] = field(default_factory=lambda: AnswerMemo(10_000))
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
