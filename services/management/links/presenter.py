"""A link row as Short.io's JSON link object (the password itself is never shown)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.management.links.validation import EPOCH


def epoch_ms(value: datetime | None) -> int | None:
    return None if value is None else (value - EPOCH) // timedelta(milliseconds=1)


def link_json(row: asyncpg.Record, scheme: str = "https") -> dict[str, Any]:
    short = f"{row['hostname']}/{row['path']}"
    body: dict[str, Any] = {
        "idString": row["id_string"],
        "id": str(row["id"]),
        "path": row["path"],
        "originalURL": row["original_url"],
        "shortURL": f"{scheme}://{short}",
        "secureShortURL": f"https://{short}",
        "title": row["title"],
        "tags": list(row["tags"]),
        "DomainId": row["domain_id"],
        "OwnerId": row["owner_key_id"],
        "FolderId": row["folder_id_string"],
        "hasPassword": row["has_password"],
        "archived": row["archived"],
        "cloaking": row["cloaking"],
        "skipQS": row["skip_qs"],
        "source": row["source"],
        "expiresAt": epoch_ms(row["expires_at"]),
        "expiredURL": row["expired_url"],
        "clicksLimit": row["clicks_limit"],
        "androidURL": row["android_url"],
        "iphoneURL": row["iphone_url"],
        "splitURL": row["split_url"],
        "splitPercent": row["split_percent"],
        "utmSource": row["utm_source"],
        "utmMedium": row["utm_medium"],
        "utmCampaign": row["utm_campaign"],
        "utmTerm": row["utm_term"],
        "utmContent": row["utm_content"],
        "ttl": None if row["ttl"] is None else row["ttl"].isoformat(),
        "createdAt": row["created_at"].isoformat(),
        "updatedAt": row["updated_at"].isoformat(),
    }
    if row["redirect_type"] is not None:
        body["redirectType"] = str(row["redirect_type"])
    # Short.io's schema has these as optional, never null (its zod types refuse null).
    return {name: value for name, value in body.items() if value is not None}


def folder_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": row["id_string"], "name": row["name"], "DomainId": row["domain_id"],
            "createdAt": row["created_at"].isoformat()}
