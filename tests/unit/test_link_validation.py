"""Unit and property tests of the pure link rules: destinations, paths, slugs, times,
page tokens and password hashes."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.management.links.listing import decode_token, encode_token
from services.management.links.presenter import epoch_ms
from services.management.links.slugs import LINK_TYPES, base36, slug_for
from services.management.links.validation import (
    MAX_URL_LENGTH,
    RESERVED_PATHS,
    parse_instant,
    validate_destination,
    validate_path,
)
from services.management.targeting.codes import country_code, region_code
from shared.errors import BadRequest
from shared.linkrecord import path_key_for
from shared.passwords import hash_password, verify_password

_HOST_LABEL = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12)
_HOSTS = st.builds(lambda a, b: f"{a}.{b}", _HOST_LABEL,
                   st.sampled_from(["com", "org", "de", "example"]))
_SAFE = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?#"


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "file:///etc/passwd",
    "//evil.example/", "http:/evil.example", "https:evil.example", "ftp://e.com/",
    "https://e.com/\\x", "https://e.com/a b", "https://e.com/\r\nx", "https://e.com/%0d%0a",
    "https://e.com/%0A", "https://e.com/%00", "https://e.com/%c0%ae", "https://e.com/%e0%80%af",
    "https://e.com/%zz", "https://e.com/%", "https://user:pw@e.com/", "https://e.com@evil.com/",
    "https://e.com:0/", "https://e.com:70000/", "https://-bad-.com/", "https:///path",
    " https://e.com/", "https://e.com/\u2028", "https://e.com/" + "a" * MAX_URL_LENGTH, "",
])
def test_refused_destinations(url: str) -> None:
    with pytest.raises(ValueError):
        validate_destination(url)


@pytest.mark.parametrize("url, expected", [
    ("https://Bücher.de/ü?q=%C3%BC", "https://xn--bcher-kva.de/ü?q=%C3%BC"),
    ("HTTP://EXAMPLE.com:8080/Path", "http://example.com:8080/Path"),
    ("https://192.0.2.1/x", "https://192.0.2.1/x"),
    ("https://[2001:db8::1]/x", "https://[2001:db8::1]/x"),
    ("https://e.com/a%20b#frag", "https://e.com/a%20b#frag"),
])
def test_accepted_destinations(url: str, expected: str) -> None:
    assert validate_destination(url) == expected


@given(scheme=st.sampled_from(["http", "https", "HTTPS"]), host=_HOSTS,
       rest=st.text(alphabet=_SAFE, max_size=60))
def test_valid_urls_normalise_idempotently(scheme: str, host: str, rest: str) -> None:
    url = f"{scheme}://{host}/{rest}"
    normalized = validate_destination(url)
    assert normalized.startswith(("http://", "https://"))
    assert validate_destination(normalized) == normalized
    assert normalized.isascii()


@given(st.text(max_size=80))
def test_anything_accepted_is_a_safe_absolute_url(text: str) -> None:
    try:
        url = validate_destination(text)
    except ValueError:
        return
    assert url.startswith(("http://", "https://"))
    assert not any(c.isspace() or ord(c) < 32 or c == "\\" for c in url)
    assert len(url) <= MAX_URL_LENGTH


@given(st.text(min_size=1, max_size=20), st.sampled_from(["\r", "\n", "%0d", "%0A", "%00",
                                                           "\t", "\x7f", "%c0%af"]))
def test_injected_controls_are_always_refused(prefix: str, bad: str) -> None:
    with pytest.raises(ValueError):
        validate_destination(f"https://example.com/{prefix}{bad}")


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1,
               max_size=40))
def test_path_keys(path: str) -> None:
    try:
        validate_path(path)
    except ValueError:
        return
    key = path_key_for(path, case_sensitive=False)
    assert key == path.lower() == path_key_for(path.upper(), case_sensitive=False)
    assert path_key_for(key, case_sensitive=False) == key
    assert path_key_for(path, case_sensitive=True) == path


@pytest.mark.parametrize("path", [*sorted(RESERVED_PATHS), "Health", "api/x", "a//b", "../x",
                                  "a b", "%41", "x" * 129, ""])
def test_refused_paths(path: str) -> None:
    with pytest.raises(ValueError):
        validate_path(path)


@given(st.sampled_from([t for t in LINK_TYPES if t != "increment"]), st.booleans())
def test_generated_slugs_are_valid_paths(link_type: str, case_sensitive: bool) -> None:
    slug = slug_for(link_type, case_sensitive=case_sensitive)
    assert validate_path(slug) == slug
    if not case_sensitive:
        assert slug == slug.lower()


@given(st.integers(min_value=0, max_value=2**63))
def test_base36_round_trips(number: int) -> None:
    assert int(base36(number), 36) == number


@given(st.integers(min_value=0, max_value=4102444800000))
def test_epoch_millis(ms: int) -> None:
    assert epoch_ms(parse_instant(ms, "expiresAt")) == ms


def test_instants() -> None:
    assert parse_instant("2030-01-02T03:04:05Z", "x") == datetime(2030, 1, 2, 3, 4, 5,
                                                                  tzinfo=UTC)
    assert parse_instant("1000", "x") == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    for bad in ("soon", "2030-13-01"):
        with pytest.raises(ValueError):
            parse_instant(bad, "x")


@given(st.datetimes(timezones=st.just(UTC)), st.integers(min_value=1, max_value=2**62),
       st.sampled_from(["asc", "desc"]))
def test_page_tokens_round_trip(when: datetime, link_id: int, order: str) -> None:
    assert decode_token(encode_token(when, link_id, order), order) == (when, link_id)


def test_page_token_refuses_garbage_and_other_order() -> None:
    token = encode_token(datetime.now(UTC), 1, "asc")
    for bad, order in (("garbage", "asc"), (token, "desc")):
        with pytest.raises(BadRequest):
            decode_token(bad, order)


def test_iso_codes() -> None:
    assert country_code("de") == "DE" and country_code("XK") == "XK"
    assert region_code("US", "ca") == "US-CA" and region_code("GB", "GB-ENG") == "GB-ENG"
    for bad in ("ZZ", "USA", ""):
        with pytest.raises(ValueError):
            country_code(bad)
    with pytest.raises(ValueError):
        region_code("US", "DE-BY")


@settings(max_examples=3, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_password_hashes_verify(password: str) -> None:
    stored = hash_password(password)
    assert stored.startswith("scrypt$14$8$1$") and len(stored.split("$")) == 6
    assert verify_password(stored, password)
    assert not verify_password(stored, password + "x")
    assert not verify_password("scrypt$99$8$1$AA==$AA==", password)
