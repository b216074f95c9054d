"""A link row as Short.io's JSON link object."""

from __future__ import annotations

from typing import Any

import asyncpg


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
        "DomainId": row["domain_id"],
        "OwnerId": row["owner_key_id"],
        "FolderId": None if row["folder_id"] is None else str(row["folder_id"]),
        "hasPassword": row["has_password"],
        "archived": row["archived"],
        "source": row["source"],
        "tags": list(row["tags"]),
        "createdAt": row["created_at"].isoformat(),
        "updatedAt": row["updated_at"].isoformat(),
    }
    if row["redirect_type"] is not None:
        body["redirectType"] = str(row["redirect_type"])
    return body
