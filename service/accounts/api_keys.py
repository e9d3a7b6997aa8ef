"""API keys: issued with scopes and limits, shown once, stored as SHA-256 (DESIGN.md §11)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from service.core.errors import FieldError, ValidationFailed
from service.core.ids import new_id
from service.db import companies
from service.db.postgres import Pool, transaction
from service.domain import apikeys


@dataclass(frozen=True)
class IssuedKey:
    """A newly created key: `key` is shown this once and never stored."""

    api_key: companies.ApiKey
    key: str


async def issue_api_key(
    pool: Pool,
    company_id: UUID,
    *,
    name: str,
    scopes: list[str],
    rate_limit_per_minute: int = 60,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Create a key with `scopes`; the returned `key` is the only time it is ever visible."""
    unknown = apikeys.unknown_scopes(scopes)
    if unknown:
        raise ValidationFailed(fields=[FieldError("scopes", f"unknown scopes: {', '.join(unknown)}")])
    if rate_limit_per_minute < 1:
        raise ValidationFailed(fields=[FieldError("rate_limit_per_minute", "must be at least 1")])
    key = apikeys.format_api_key(secrets.token_bytes(apikeys.RANDOM_BYTES))
    async with transaction(pool) as conn:
        await companies.get_company(conn, company_id)
        api_key = await companies.insert_api_key(
            conn,
            companies.NewApiKey(
                id=new_id(),
                company_id=company_id,
                name=name,
                key_sha256=apikeys.hash_api_key(key),
                prefix=apikeys.shown_prefix(key),
                scopes=list(dict.fromkeys(scopes)),
                rate_limit_per_minute=rate_limit_per_minute,
                expires_at=expires_at,
            ),
        )
    return IssuedKey(api_key, key)
