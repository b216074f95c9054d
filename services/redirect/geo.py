"""Where a visitor is: the client IP and its country (and region where known).

Sources, first that applies:
1. a trusted edge header (Cloudflare, CloudFront or Vercel), only when the connection
   comes from one of the configured proxy networks; anyone else could forge it;
2. a MaxMind-format database at a configured path (GeoLite2/GeoIP2 Country or City,
   DB-IP lite, ...); City databases also give the region;
3. the RIR allocation data shipped inside the ``iptocc`` wheel (country only), so
   country targeting works out of the box with no download at run time.

Regions are ISO 3166-2 codes with the country prefix ("US-CA"), as the link records
store them; edge headers and MaxMind give the subdivision part only ("CA").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from typing import Any

import iptocc
import maxminddb
from aiohttp import hdrs

Network = IPv4Network | IPv6Network

# (country header, region header) per edge.
EDGE_HEADERS: Mapping[str, tuple[str, str]] = {
    "cloudflare": ("CF-IPCountry", "CF-Region-Code"),
    "cloudfront": ("CloudFront-Viewer-Country", "CloudFront-Viewer-Country-Region"),
    "vercel": ("X-Vercel-IP-Country", "X-Vercel-IP-Country-Region"),
}
# Values edges use for "unknown" (XX), Tor (T1) and similar: no country.
_NOT_COUNTRIES = frozenset({"", "XX", "T1", "A1", "A2", "O1", "ZZ"})


@dataclass(frozen=True, slots=True)
class Place:
    country: str | None = None
    region: str | None = None


NOWHERE = Place()


def region_code(country: str | None, code: str | None) -> str | None:
    if not country or not code:
        return None
    code = code.strip().upper()
    if not code:
        return None
    return code if "-" in code else f"{country}-{code}"


def _country(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().upper()
    if len(value) != 2 or value in _NOT_COUNTRIES or not value.isalpha():
        return None
    return value


class ProxyTrust:
    """Which peers may tell us the client's IP and location."""

    def __init__(self, networks: Sequence[Network]) -> None:
        self._networks = tuple(networks)

    def trusts(self, ip: str | None) -> bool:
        if not self._networks or ip is None:
            return False
        return _is_in(ip, self._networks)

    def client_ip_of(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """:meth:`client_ip` of a request: X-Forwarded-For is read only when a proxy is
        trusted (without one, every visit's client is its peer: a header lookup less)."""
        if not self._networks:
            return peer
        return self.client_ip(peer, headers.get(hdrs.X_FORWARDED_FOR))

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The peer, or, behind trusted proxies, the first untrusted X-Forwarded-For hop
        counted from the right (hops to the left of it could be forged by the client)."""
        if forwarded_for is None or not self.trusts(peer):
            return peer
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            if not hop:
                continue
            if not self.trusts(hop):
                return hop if _valid_ip(hop) else peer
        return peer


@lru_cache(maxsize=1024)
def _is_in(ip: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in networks)


def _valid_ip(ip: str) -> bool:
    try:
        ip_address(ip)
    except ValueError:
        return False
    return True


class GeoLocator:
    def __init__(
        self,
        *,
        edge: str | None,
        trust: ProxyTrust,
        database: Path | None,
    ) -> None:
        self._edge = EDGE_HEADERS[edge] if edge else None
        self._trust = trust
        self._reader: Any = maxminddb.open_database(str(database)) if database else None
        self.source = "header" if edge else "maxmind" if database else "iptocc"
        # The place of an IP address: bound once (every visit asks).
        self.lookup: Callable[[str], Place] = (
            self._lookup_mmdb if self._reader is not None else _lookup_rir)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def locate(self, peer: str | None, client_ip: str | None,
               headers: Mapping[str, str]) -> Place:
        if self._edge is not None and self._trust.trusts(peer):
            country = _country(headers.get(self._edge[0]))
            if country is not None:
                return Place(country, region_code(country, headers.get(self._edge[1])))
        if client_ip is None:
            return NOWHERE
        return self.lookup(client_ip)

    def _lookup_mmdb(self, ip: str) -> Place:
        try:
            record = self._reader.get(ip)
        except ValueError:
            return NOWHERE
        if not isinstance(record, dict):
            return NOWHERE
        country = _country((record.get("country") or {}).get("iso_code"))
        subdivisions = record.get("subdivisions") or []
        code = subdivisions[0].get("iso_code") if subdivisions else None
        return Place(country, region_code(country, code))


@lru_cache(maxsize=8192)
def _lookup_rir(ip: str) -> Place:
    try:
        return Place(_country(iptocc.country_code(ip)), None)
    except ValueError:
        return NOWHERE
