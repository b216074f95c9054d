"""A domain row as Short.io's JSON Domain object."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.management.domains.schemas import Domain, DomainDetail


def _fields(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "hostname": row["hostname"],
        "unicodeHostname": row["unicode_hostname"],
        "state": row["state"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "TeamId": row["team_id"],
        "hideReferer": row["hide_referer"],
        "linkType": row["link_type"],
        "cloaking": row["cloaking"],
        "hideVisitorIp": row["hide_visitor_ip"],
        "httpsLevel": row["https_level"],
        "webhookURL": row["webhook_url"],
        "caseSensitive": row["case_sensitive"],
        "incrementCounter": str(row["increment_counter"]),
        "robots": row["robots"],
        "redirectType": row["redirect_type"],
        "rootRedirect": row["root_redirect"],
        "notFoundRedirect": row["not_found_redirect"],
    }


def _dump(model: Domain) -> dict[str, Any]:
    # The SDK types webhookURL as an optional string: absent, never null.
    exclude = {"webhookURL"} if model.webhookURL is None else set()
    return model.model_dump(mode="json", exclude=exclude)


def domain_json(row: asyncpg.Record) -> dict[str, Any]:
    return _dump(Domain(**_fields(row)))


def domain_detail_json(row: asyncpg.Record) -> dict[str, Any]:
    return _dump(DomainDetail(**_fields(row)))
