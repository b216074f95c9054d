"""Wire shapes of the links API (Short.io's field names, see @short.io/client-node)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.management.links.validation import validate_destination, validate_path


class CreateLinkRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    domain: str = Field(min_length=1, max_length=253)
    originalURL: str
    path: str | None = None
    title: str | None = Field(default=None, max_length=512)

    @field_validator("originalURL")
    @classmethod
    def _destination(cls, value: str) -> str:
        return validate_destination(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else validate_path(value)
