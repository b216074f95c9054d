"""Everything a request needs, gathered in one object (one app lookup per request)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field

from services.redirect.events import ClickEmitter
from services.redirect.geo import GeoLocator, ProxyTrust
from services.redirect.metrics import Counters
from services.redirect.resolve import Resolver
from services.redirect.rules import DecisionMemo
from services.redirect.settings import Settings
from services.redirect.unlock import AttemptLimiter

log = logging.getLogger(__name__)


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
    decisions: DecisionMemo = field(default_factory=lambda: DecisionMemo(10_000))
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
