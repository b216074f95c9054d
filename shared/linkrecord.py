"""The compiled records the redirect edge reads from Redis, and how they are written.

The management service compiles a link (with its domain's settings and its targeting
rules) into a :class:`LinkRecord` and writes it through to Redis in the same request;
the redirect service reads it with one round trip. Every record carries a ``version``
from one Postgres sequence; the write script refuses a version older than the stored
one, so a slow writer can never overwrite a newer record, and deletions leave a
short-lived tombstone so that an older write cannot resurrect a deleted link.

Keys: ``lh:d:{hostname}`` for a domain, ``lh:l:{hostname}:{path_key}`` for a link, where
``path_key`` is the path, lower-cased on case-insensitive domains. The redirect edge
fetches ``[domain, link(path), link(path.lower())]`` in one MGET, so it never needs the
domain's case setting before its single round trip.
"""

from __future__ import annotations

from typing import Final, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

CHANGES_CHANNEL: Final = "lh:changes"
TOMBSTONE_TTL_SECONDS: Final = 24 * 3600

RedirectType = Literal[301, 302, 307, 308]


class DomainRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    domain_id: int
    hostname: str
    case_sensitive: bool = False
    hide_referer: bool = False
    hide_visitor_ip: bool = False
    robots: Literal["allow", "disallow", "noindex"] = "allow"
    redirect_type: RedirectType = 302
    root_redirect: str | None = None
    not_found_redirect: str | None = None
    deleted: bool = False


class LinkRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    link_id: int
    id_string: str
    domain_id: int
    path: str
    url: str
    redirect_type: RedirectType | None = None  # None: the domain's default
    title: str | None = None
    archived: bool = False
    deleted: bool = False
    expires_at: float | None = None  # epoch seconds
    expired_url: str | None = None
    clicks_limit: int | None = None
    password_hash: str | None = None
    iphone_url: str | None = None
    android_url: str | None = None
    # default_factory, not ``= {}``: pydantic deep-copies a mutable default into every
    # record that lacks the field, which cost more than parsing the field itself.
    countries: dict[str, str] = Field(default_factory=dict)  # "US" -> url
    regions: dict[str, str] = Field(default_factory=dict)  # "US-CA" -> url
    split_url: str | None = None
    split_percent: int | None = None
    # utm_source, utm_medium, utm_campaign, utm_term, utm_content
    utm: dict[str, str] = Field(default_factory=dict)
    skip_qs: bool = False
    cloaking: bool = False


_LINK_JSON = LinkRecord.__pydantic_validator__.validate_json
_DOMAIN_JSON = DomainRecord.__pydantic_validator__.validate_json


def parse_link(raw: bytes | str) -> LinkRecord:
    """``LinkRecord.model_validate_json`` without its Python wrapper: the same validation
    by the same compiled validator, ~0.6 us (a fifth) less per record on the edge's Redis
    path."""
    record: LinkRecord = _LINK_JSON(raw)
    return record


def parse_domain(raw: bytes | str) -> DomainRecord:
    """``DomainRecord.model_validate_json``, the same way as :func:`parse_link`."""
    record: DomainRecord = _DOMAIN_JSON(raw)
    return record


def record_json(record: LinkRecord | DomainRecord) -> str:
    """The stored form of a record: its JSON without the fields at their defaults.

    Most links use a few of the ~20 rule fields; a record of only those is a quarter of
    the size and parses in two thirds of the time on the edge's Redis path (the parser
    fills in the defaults). Every reader validates with the model, so a record written
    in full (as before) reads the same."""
    return record.model_dump_json(exclude_defaults=True)


def domain_key(hostname: str) -> str:
    return f"lh:d:{hostname}"


def link_key(hostname: str, path_key: str) -> str:
    return f"lh:l:{hostname}:{path_key}"


def path_key_for(path: str, case_sensitive: bool) -> str:
    return path if case_sensitive else path.lower()


# KEYS[1]: record key. ARGV[1]: version, ARGV[2]: payload, ARGV[3]: ttl seconds (0 = none),
# ARGV[4]: channel. Writes only when newer than what is stored; announces the key.
_WRITE_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and decoded['version']
     and tonumber(decoded['version']) >= tonumber(ARGV[1]) then
    return 0
  end
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('PUBLISH', ARGV[4], KEYS[1])
return 1
"""


class RecordStore:
    """Versioned writes of compiled records to Redis, announced on :data:`CHANGES_CHANNEL`."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._write = client.register_script(_WRITE_IF_NEWER)

    async def _put(self, key: str, version: int, payload: str, ttl: int = 0) -> bool:
        written = await self._write(keys=[key], args=[version, payload, ttl, CHANGES_CHANNEL])
        return bool(written)

    async def put_link(self, hostname: str, path_key: str, record: LinkRecord) -> bool:
        ttl = TOMBSTONE_TTL_SECONDS if record.deleted else 0
        return await self._put(
            link_key(hostname, path_key), record.version, record_json(record), ttl
        )

    async def delete_link(
        self, hostname: str, path_key: str, *, link_id: int, domain_id: int, version: int
    ) -> bool:
        tombstone = LinkRecord(
            version=version, link_id=link_id, id_string="", domain_id=domain_id,
            path=path_key, url="", deleted=True,
        )
        return await self.put_link(hostname, path_key, tombstone)

    async def put_links(self, items: list[tuple[str, str, LinkRecord]]) -> int:
        """Many (hostname, path_key, record) writes in ONE pipelined round trip, each
        still refused when older than what is stored; how many were written."""
        if not items:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for hostname, path_key, record in items:
                ttl = TOMBSTONE_TTL_SECONDS if record.deleted else 0
                await self._write(
                    keys=[link_key(hostname, path_key)],
                    args=[record.version, record_json(record), ttl, CHANGES_CHANNEL],
                    client=pipe,
                )
            results = await pipe.execute()
        return sum(1 for written in results if written)

    async def delete_links(self, items: list[tuple[str, str, int, int, int]]) -> int:
        """Tombstones for many (hostname, path_key, link_id, domain_id, version), pipelined."""
        return await self.put_links([
            (hostname, path_key, LinkRecord(
                version=version, link_id=link_id, id_string="", domain_id=domain_id,
                path=path_key, url="", deleted=True))
            for hostname, path_key, link_id, domain_id, version in items
        ])

    async def put_domain(self, record: DomainRecord) -> bool:
        ttl = TOMBSTONE_TTL_SECONDS if record.deleted else 0
        return await self._put(
            domain_key(record.hostname), record.version, record_json(record), ttl
        )
