"""ISO 3166 codes for geo targeting, from pycountry (a maintained copy of the ISO data).

Besides ISO 3166-1 alpha-2, Short.io's country type accepts ``XK`` (Kosovo, user-assigned
but what geo-IP databases report) and ``EU``; linkhop accepts those two as well.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import pycountry

EXTRA_COUNTRIES: Final = frozenset({"XK", "EU"})


@cache
def countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries) | EXTRA_COUNTRIES


def country_code(raw: str) -> str:
    """The upper-case alpha-2 code; ValueError when it is no country."""
    code = raw.strip().upper() if isinstance(raw, str) else ""
    if code not in countries():
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code, not {raw!r}")
    return code


@cache
def regions_of(country: str) -> dict[str, str]:
    """ISO 3166-2 code -> name of the country's subdivisions."""
    found = [s for s in pycountry.subdivisions if s.country_code == country]
    return {s.code: s.name for s in sorted(found, key=lambda s: s.code)}


def region_code(country: str, raw: str) -> str:
    """The full ISO 3166-2 code (``US-CA``; ``CA`` is read as the country's ``CA``)."""
    code = raw.strip().upper() if isinstance(raw, str) else ""
    if code and "-" not in code:
        code = f"{country}-{code}"
    if code not in regions_of(country):
        raise ValueError(f"region must be an ISO 3166-2 code of {country}, not {raw!r}")
    return code
