"""QR code images with segno (pure Python): PNG or SVG, colours, size.

``size`` is the SDK's number: linkhop reads it as the module scale, 1..100 pixels per
QR module (a 25-module code at size 10 is 330 px with the quiet zone). Rendering is
CPU work, so callers run it off the event loop.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Literal

import segno
from pydantic import BaseModel, ConfigDict, Field, field_validator

ImageType = Literal["png", "svg"]
_HEX = re.compile(r"^#?([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})$")
MAX_BULK_QR = 500
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}


def _colour(value: str | None) -> str | None:
    if value is None:
        return None
    if not _HEX.match(value):
        raise ValueError("colours must be hex, like 000000 or #1a2b3c")
    return "#" + value.lstrip("#").lower()


class QrOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    color: str | None = None
    backgroundColor: str | None = None
    size: int = Field(default=10, ge=1, le=100)
    type: ImageType = "png"
    useDomainSettings: bool = False

    @field_validator("color", "backgroundColor")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        return _colour(value)


class BulkQrRequest(QrOptions):
    linkIds: list[str] = Field(min_length=1, max_length=MAX_BULK_QR)
    domainId: str | int | None = None


def render(url: str, options: QrOptions) -> bytes:
    code = segno.make(url, error="m")
    out = io.BytesIO()
    code.save(out, kind=options.type, scale=options.size,
              dark=options.color or "#000000", light=options.backgroundColor or "#ffffff")
    return out.getvalue()


def render_zip(named_urls: list[tuple[str, str]], options: QrOptions) -> bytes:
    """A ZIP of one image per (file stem, url)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for stem, url in named_urls:
            archive.writestr(f"{stem}.{options.type}", render(url, options))
    return out.getvalue()
