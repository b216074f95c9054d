"""Wire shapes of linkhop's API key endpoints (Short.io has no public key API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from shared.apikeys import KeyKind


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: KeyKind = Field(description="private: everything its restriction allows;"
                                      " public: may only create links")
    description: str | None = Field(default=None, max_length=256)
    expiresAt: datetime | None = Field(
        default=None, description="ISO 8601 (UTC when no offset) or epoch seconds/ms"
    )
    domainId: int | None = Field(
        default=None, ge=1, description="Restrict the key to this domain of the team"
    )

    @field_validator("expiresAt")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value <= datetime.now(UTC):
            raise ValueError("expiresAt must be in the future")
        return value


class ApiKey(BaseModel):
    id: int
    prefix: str = Field(description="The key's first characters: enough to recognise it,"
                                    " never enough to use it")
    kind: KeyKind
    domainId: int | None
    description: str | None
    expiresAt: datetime | None
    revokedAt: datetime | None
    createdAt: datetime
    state: Literal["active", "expired", "revoked"]


class CreatedKey(ApiKey):
    key: str = Field(description="The secret: shown once, only its hash is stored")


class ApiKeyList(RootModel[list[ApiKey]]):
    """GET /api/keys answers a JSON array."""


class RevokedKey(BaseModel):
    success: bool = True
    id: int
