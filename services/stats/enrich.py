"""Pure enrichment of a click: browser, OS and device from the user agent, the referer's
host and social network, and the country when the edge did not add one.

User agents repeat heavily (a few hundred distinct strings make most traffic) and a
regex parse costs ~1 ms, so parses are cached; referer hosts likewise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit

import iptocc
from ua_parser import parse as parse_ua

# Parses are cached per distinct string; bounded so a flood of unique (spoofed) user
# agents cannot grow memory without limit.
_CACHE_SIZE = 16384

_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS",
                        "Symbian OS", "Firefox OS", "webOS", "Tizen"})
_DESKTOP_OS = frozenset({"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora",
                         "FreeBSD", "OpenBSD", "Debian", "macOS"})

# Hosts (without "www.") of the social networks Short.io reports, and their names.
SOCIAL_HOSTS: dict[str, str] = {
    "facebook.com": "facebook", "fb.com": "facebook", "fb.me": "facebook",
    "twitter.com": "twitter", "t.co": "twitter", "x.com": "twitter",
    "instagram.com": "instagram",
    "linkedin.com": "linkedin", "lnkd.in": "linkedin",
    "reddit.com": "reddit", "redd.it": "reddit",
    "youtube.com": "youtube", "youtu.be": "youtube",
    "pinterest.com": "pinterest", "pin.it": "pinterest",
    "tiktok.com": "tiktok",
    "t.me": "telegram", "telegram.org": "telegram",
    "vk.com": "vk",
    "wa.me": "whatsapp", "whatsapp.com": "whatsapp",
    "news.ycombinator.com": "hackernews",
    "quora.com": "quora",
    "tumblr.com": "tumblr",
    "snapchat.com": "snapchat",
    "threads.net": "threads",
    "bsky.app": "bluesky",
    "discord.com": "discord", "discord.gg": "discord",
}


@dataclass(frozen=True)
class Agent:
    browser: str | None
    os: str | None
    device: str | None  # desktop, mobile, tablet, bot or other
    bot: bool


@functools.lru_cache(maxsize=_CACHE_SIZE)
def parse_agent(user_agent: str | None) -> Agent:
    if not user_agent:
        return Agent(None, None, None, False)
    result = parse_ua(user_agent)
    browser = result.user_agent.family if result.user_agent else None
    os_name = result.os.family if result.os else None
    device_family = result.device.family if result.device else None
    bot = device_family == "Spider"
    return Agent(
        browser=None if browser == "Other" else browser,
        os=None if os_name == "Other" else os_name,
        device=_device_kind(device_family, os_name, user_agent, bot),
        bot=bot,
    )


def _device_kind(family: str | None, os_name: str | None, user_agent: str, bot: bool) -> str:
    if bot:
        return "bot"
    if family and ("iPad" in family or "Tablet" in family):
        return "tablet"
    if os_name == "Android" and "Mobile" not in user_agent:
        return "tablet"  # Android tablets omit "Mobile" (Google's documented convention)
    if os_name in _MOBILE_OS or "Mobile" in user_agent:
        return "mobile"
    if os_name in _DESKTOP_OS:
        return "desktop"
    return "other"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def referer_host(referer: str | None) -> str | None:
    """The referer's host name, lower case, without a leading ``www.``."""
    if not referer:
        return None
    try:
        host = urlsplit(referer.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.removeprefix("www.")


@functools.lru_cache(maxsize=_CACHE_SIZE)
def social_network(host: str | None) -> str | None:
    """The social network a referer host belongs to (subdomains included: m.facebook.com)."""
    if not host:
        return None
    labels = host.split(".")
    for i in range(len(labels) - 1):
        name = SOCIAL_HOSTS.get(".".join(labels[i:]))
        if name is not None:
            return name
    return None


def country_of(ip: str | None) -> str | None:
    """Country from the bundled IP-to-country table (used when the edge sent none)."""
    if not ip:
        return None
    code = iptocc.country_code(ip)
    return code if isinstance(code, str) else None
