"""Wire shapes of the domains API: Short.io's Domain type (``@short.io/client-node``),
plus linkhop's per-domain ``redirectType``, ``rootRedirect`` and ``notFoundRedirect``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    field_validator,
    model_validator,
)

from services.management.links.validation import validate_destination

LinkType = Literal["increment", "random", "secure", "four-char", "eight-char", "ten-char"]
HttpsLevel = Literal["none", "redirect", "hsts"]
Robots = Literal["allow", "disallow", "noindex"]
DomainState = Literal[
    "extra_records", "not_registered", "configured", "not_configured",
    "registration_pending", "not_verified",
]
RedirectCode = Literal[301, 302, 307, 308]

# Settings a client may clear with null or "" (everything else must keep a value).
_CLEARABLE = ("webhookURL", "rootRedirect", "notFoundRedirect")


def _url_setting(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    return validate_destination(value, field)


def _redirect_code(value: Any) -> Any:
    """Short.io clients send redirectType as "301" or 301."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


class CreateDomainRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hostname: str = Field(min_length=1, max_length=253)
    hideReferer: bool = False
    linkType: LinkType = "random"


class DomainSettingsRequest(BaseModel):
    """POST /domains/settings/{domainId}: only the fields sent are changed.

    Short.io fields linkhop has no use for (integrations, segmentKey, clientStorage, ...)
    are accepted and ignored, so existing clients keep working.
    """

    model_config = ConfigDict(extra="ignore")

    linkType: LinkType | None = None
    caseSensitive: bool | None = None
    hideReferer: bool | None = None
    hideVisitorIp: bool | None = None
    httpsLevel: HttpsLevel | None = None
    robots: Robots | None = None
    cloaking: bool | None = None
    redirectType: RedirectCode | None = Field(
        default=None, description="The domain's default redirect status for its links."
    )
    webhookURL: str | None = None
    rootRedirect: str | None = Field(
        default=None, description="Where a visit to the bare domain goes (http(s) URL)."
    )
    notFoundRedirect: str | None = Field(
        default=None, description="Where a visit to an unknown path goes (http(s) URL)."
    )

    @field_validator("redirectType", mode="before")
    @classmethod
    def _redirect(cls, value: Any) -> Any:
        return _redirect_code(value)

    @field_validator("webhookURL", "rootRedirect", "notFoundRedirect")
    @classmethod
    def _urls(cls, value: str | None, info: Any) -> str | None:
        return _url_setting(value, info.field_name)

    @model_validator(mode="after")
    def _no_null_settings(self) -> DomainSettingsRequest:
        for name in self.model_fields_set:
            if name not in _CLEARABLE and getattr(self, name) is None:
                raise ValueError(f"{name} must not be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The columns to update, by name (only what the client sent)."""
        columns = {
            "linkType": "link_type", "caseSensitive": "case_sensitive",
            "hideReferer": "hide_referer", "hideVisitorIp": "hide_visitor_ip",
            "httpsLevel": "https_level", "robots": "robots", "cloaking": "cloaking",
            "redirectType": "redirect_type", "webhookURL": "webhook_url",
            "rootRedirect": "root_redirect", "notFoundRedirect": "not_found_redirect",
        }
        return {columns[name]: getattr(self, name) for name in self.model_fields_set
                if name in columns}


class SuccessResponse(BaseModel):
    success: bool = True


class Domain(BaseModel):
    """A domain as Short.io answers it (fields linkhop does not implement carry the
    neutral values Short.io uses for a domain without those features)."""

    id: int
    hostname: str
    unicodeHostname: str
    state: DomainState
    createdAt: datetime
    updatedAt: datetime
    TeamId: int
    hasFavicon: bool = False
    hideReferer: bool
    linkType: LinkType
    cloaking: bool
    hideVisitorIp: bool
    enableAI: bool = False
    httpsLevel: HttpsLevel
    httpsLinks: bool = True
    webhookURL: str | None = None
    clientStorage: dict[str, Any] = Field(default_factory=dict)
    caseSensitive: bool
    incrementCounter: str
    robots: Robots
    exportEnabled: bool = True
    enableConversionTracking: bool = False
    qrScanTracking: bool = True
    isFavorite: bool = False
    redirectType: RedirectCode
    rootRedirect: str | None = None
    notFoundRedirect: str | None = None


class DomainDetail(Domain):
    """GET /domains/{domainId} adds these to the Domain."""

    ipExclusions: list[str] = Field(default_factory=list)
    userPlan: Literal["tiny", "hobby", "small", "standard", "large"] = "large"


class DomainList(RootModel[list[Domain]]):
    """GET /api/domains answers a bare JSON array of Domain."""


class ListDomainsQuery(BaseModel):
    """Query of GET /api/domains: the parameters of Short.io's SDK (ListDomainsData)."""

    limit: int = Field(default=1000, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=2**31 - 1)
    # Case-insensitive part of the hostname (ASCII or Unicode form).
    pattern: str | None = Field(default=None, min_length=1, max_length=253)
    # A key belongs to one team: another team's id is refused, the key's own is a no-op.
    teamId: int | None = Field(default=None, ge=1, le=2**63 - 1)
    # Short.io's personal (team-less) domains: linkhop has none, so true lists nothing.
    noTeamId: bool = False
