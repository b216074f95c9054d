"""Wire shapes of the links API (Short.io's field names, see @short.io/client-node).

One set of field rules (:class:`LinkFields`) serves create, update, bulk items and the
public create, so every way in enforces the same limits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.management.links.validation import parse_instant, validate_destination, validate_path

MAX_BULK_LINKS = 1000
MAX_TAGS = 50
MAX_TAG_LENGTH = 100
MAX_TEXT = 512
MAX_PASSWORD = 256
MAX_IDS = 1000

RedirectCode = Literal[301, 302, 307, 308]

# Request field -> links column, for the plain (already validated) values.
COLUMN_OF: dict[str, str] = {
    "originalURL": "original_url", "path": "path", "title": "title", "tags": "tags",
    "expiresAt": "expires_at", "expiredURL": "expired_url", "redirectType": "redirect_type",
    "clicksLimit": "clicks_limit", "androidURL": "android_url", "iphoneURL": "iphone_url",
    "splitURL": "split_url", "splitPercent": "split_percent", "utmSource": "utm_source",
    "utmMedium": "utm_medium", "utmCampaign": "utm_campaign", "utmTerm": "utm_term",
    "utmContent": "utm_content", "skipQS": "skip_qs", "cloaking": "cloaking",
    "archived": "archived", "ttl": "ttl",
}
_URL_FIELDS = ("originalURL", "expiredURL", "androidURL", "iphoneURL", "splitURL")


class LinkFields(BaseModel):
    """The optional settings of a link, shared by every request that writes one."""

    model_config = ConfigDict(extra="ignore")

    path: str | None = None
    title: str | None = Field(default=None, max_length=MAX_TEXT)
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)
    expiresAt: datetime | None = None
    expiredURL: str | None = None
    password: str | None = Field(default=None, min_length=1, max_length=MAX_PASSWORD)
    redirectType: RedirectCode | None = None
    clicksLimit: int | None = Field(default=None, ge=1, le=2**31 - 1)
    androidURL: str | None = None
    iphoneURL: str | None = None
    splitURL: str | None = None
    splitPercent: int | None = Field(default=None, ge=1, le=100)
    utmSource: str | None = Field(default=None, max_length=MAX_TEXT)
    utmMedium: str | None = Field(default=None, max_length=MAX_TEXT)
    utmCampaign: str | None = Field(default=None, max_length=MAX_TEXT)
    utmTerm: str | None = Field(default=None, max_length=MAX_TEXT)
    utmContent: str | None = Field(default=None, max_length=MAX_TEXT)
    skipQS: bool | None = None
    cloaking: bool | None = None
    archived: bool | None = None
    ttl: datetime | None = None
    folderId: str | None = Field(default=None, max_length=64)

    @field_validator("expiredURL", "androidURL", "iphoneURL", "splitURL")
    @classmethod
    def _urls(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else validate_destination(value, str(info.field_name))

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else validate_path(value)

    @field_validator("expiresAt", "ttl", mode="before")
    @classmethod
    def _instant(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        if not isinstance(value, int | float | str):
            raise ValueError(f"{info.field_name} must be epoch milliseconds or an ISO 8601 date")
        return parse_instant(value, str(info.field_name))

    @field_validator("redirectType", mode="before")
    @classmethod
    def _redirect(cls, value: Any) -> Any:
        # Short.io answers redirectType as a string; accept it back the same way.
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = []
        for tag in value:
            tag = tag.strip()
            if not tag or len(tag) > MAX_TAG_LENGTH:
                raise ValueError(f"each tag must be 1 to {MAX_TAG_LENGTH} characters")
            if tag not in cleaned:
                cleaned.append(tag)
        return cleaned


class LinkItem(LinkFields):
    """One link to create (a bulk item has no domain of its own)."""

    originalURL: str
    allowDuplicates: bool | None = None

    @field_validator("originalURL")
    @classmethod
    def _destination(cls, value: str) -> str:
        return validate_destination(value)


class CreateLinkRequest(LinkItem):
    domain: str = Field(min_length=1, max_length=253)


class UpdateLinkRequest(LinkFields):
    """A partial update: only the fields sent change (``null`` clears an optional one)."""

    originalURL: str | None = None

    @field_validator("originalURL")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("originalURL cannot be cleared")
        return validate_destination(value)


class BulkCreateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    domain: str = Field(min_length=1, max_length=253)
    allowDuplicates: bool = False
    folderId: str | None = Field(default=None, max_length=64)
    # Items are validated one by one, so one bad item fails alone.
    links: list[Any] = Field(min_length=1)


class DuplicateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else validate_path(value)


class LinkIdRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    link_id: str = Field(min_length=1, max_length=64)
    domain_id: str | int | None = None


class LinkIdsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    link_ids: list[str] = Field(min_length=1, max_length=MAX_IDS)
    domain_id: str | int | None = None


class TagsBulkRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tag: str = Field(min_length=1, max_length=MAX_TAG_LENGTH)
    link_ids: list[str] = Field(min_length=1, max_length=MAX_IDS)


class CreateFolderRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    domainId: int
    name: str = Field(min_length=1, max_length=MAX_TEXT)


class ListLinksQuery(BaseModel):
    """Query of GET /api/links (documented in OpenAPI; parsed by the handler)."""

    domain_id: int
    limit: int = Field(default=50, ge=1, le=150)
    # The SDK's two exact filters: the one link with this idString, and the links
    # created at exactly this instant (epoch milliseconds or ISO 8601, as beforeDate).
    idString: str | None = Field(default=None, max_length=MAX_TEXT)
    createdAt: str | None = None
    pageToken: str | None = None
    beforeDate: str | None = None
    afterDate: str | None = None
    dateSortOrder: Literal["asc", "desc"] = "desc"
    folderId: str | None = None


class ExpandQuery(BaseModel):
    domain: str
    path: str


class ByUrlQuery(BaseModel):
    domain_id: int | None = None
    domain: str | None = None
    originalURL: str


class LinkResponse(BaseModel):
    """The link object (documentation of the answer; the presenter builds it)."""

    model_config = ConfigDict(extra="allow")

    idString: str
    id: str
    shortURL: str
    secureShortURL: str
    path: str
    originalURL: str
    DomainId: int
    duplicate: bool | None = None
