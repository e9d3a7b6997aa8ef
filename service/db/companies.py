"""Companies and their API keys."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from service.core.errors import NotFound
from service.db.postgres import Connection, Record, fetch_one


@dataclass(frozen=True)
class CompanyRow:
    """One `companies` row; `balance_cents` moves only through the ledger."""

    id: UUID
    name: str
    balance_cents: int
    currency: str
    is_suspended: bool
    billing_email: str | None
    has_payment_method: bool
    auto_topup_enabled: bool
    auto_topup_amount_cents: int | None
    low_balance_threshold_cents: int | None
    created_at: datetime


@dataclass(frozen=True)
class KeyAuth:
    """What authenticating a request needs to know about its key (cached briefly)."""

    id: UUID
    company_id: UUID
    scopes: frozenset[str]
    rate_limit_per_minute: int
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class ApiKey:
    """One `api_keys` row (never the key itself: only its hash and visible prefix)."""

    id: UUID
    company_id: UUID
    name: str
    prefix: str
    scopes: list[str]
    rate_limit_per_minute: int
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


COMPANY_COLUMNS = ", ".join(f.name for f in fields(CompanyRow))
API_KEY_COLUMNS = ", ".join(f.name for f in fields(ApiKey))

_INSERT_COMPANY = f"""
INSERT INTO companies (id, name, billing_email) VALUES ($1, $2, $3) RETURNING {COMPANY_COLUMNS}
"""
_UPDATE_COMPANY = f"""
UPDATE companies SET name = $2, is_suspended = $3, billing_email = $4, updated_at = now()
WHERE id = $1 RETURNING {COMPANY_COLUMNS}
"""
_SELECT_KEY_AUTH = """
SELECT id, company_id, scopes, rate_limit_per_minute, expires_at, revoked_at
FROM api_keys WHERE key_sha256 = $1
"""
_SELECT_KEY_AUTH_BY_ID = """
SELECT id, company_id, scopes, rate_limit_per_minute, expires_at, revoked_at
FROM api_keys WHERE id = $1
"""
_REVOKE_KEY = f"""
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = $1 AND company_id = $2 RETURNING {API_KEY_COLUMNS}
"""
_SELECT_COMPANY = f"SELECT {COMPANY_COLUMNS} FROM companies WHERE id = $1"
_COUNT_COMPANIES = "SELECT count(*) FROM companies"
_INSERT_API_KEY = f"""
INSERT INTO api_keys (id, company_id, name, key_sha256, prefix, scopes, rate_limit_per_minute, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING {API_KEY_COLUMNS}
"""
_SELECT_API_KEYS = f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE company_id = $1 ORDER BY created_at, id"


def _company(record: Record) -> CompanyRow:
    return CompanyRow(**dict(record))


def _api_key(record: Record) -> ApiKey:
    return ApiKey(**dict(record))


async def insert_company(
    conn: Connection, company_id: UUID, name: str, billing_email: str | None = None
) -> CompanyRow:
    """Create a company with a zero balance (credit it through the ledger)."""
    record = await fetch_one(conn, _INSERT_COMPANY, company_id, name, billing_email)
    return _company(record)


async def fetch_company(conn: Connection, company_id: UUID) -> CompanyRow | None:
    record = await conn.fetchrow(_SELECT_COMPANY, company_id)
    return None if record is None else _company(record)


async def get_company(conn: Connection, company_id: UUID) -> CompanyRow:
    """The company, or NotFound."""
    company = await fetch_company(conn, company_id)
    if company is None:
        raise NotFound(f"CompanyRow {company_id} not found")
    return company


async def count_companies(conn: Connection) -> int:
    count = await conn.fetchval(_COUNT_COMPANIES)
    return int(count)


@dataclass(frozen=True)
class NewApiKey:
    id: UUID
    company_id: UUID
    name: str
    key_sha256: bytes
    prefix: str
    scopes: list[str]
    rate_limit_per_minute: int = 60
    expires_at: datetime | None = None


async def insert_api_key(conn: Connection, new: NewApiKey) -> ApiKey:
    """Store a key's hash and prefix; the key itself is never stored."""
    record = await fetch_one(
        conn,
        _INSERT_API_KEY,
        new.id,
        new.company_id,
        new.name,
        new.key_sha256,
        new.prefix,
        new.scopes,
        new.rate_limit_per_minute,
        new.expires_at,
    )
    return _api_key(record)


async def list_api_keys(conn: Connection, company_id: UUID) -> list[ApiKey]:
    """The company's keys, oldest first, revoked ones included."""
    return [_api_key(r) for r in await conn.fetch(_SELECT_API_KEYS, company_id)]


async def update_company(
    conn: Connection, company_id: UUID, *, name: str, is_suspended: bool, billing_email: str | None
) -> CompanyRow:
    record = await conn.fetchrow(_UPDATE_COMPANY, company_id, name, is_suspended, billing_email)
    if record is None:
        raise NotFound(f"CompanyRow {company_id} not found")
    return _company(record)


async def fetch_key_auth(conn: Connection, key_sha256: bytes) -> KeyAuth | None:
    """The key with this hash, revoked and expired ones included (the caller tells them apart)."""
    return _key_auth(await conn.fetchrow(_SELECT_KEY_AUTH, key_sha256))


async def fetch_key_auth_by_id(conn: Connection, key_id: UUID) -> KeyAuth | None:
    """The key with this id (a dashboard session names its key by id), revoked and expired ones included."""
    return _key_auth(await conn.fetchrow(_SELECT_KEY_AUTH_BY_ID, key_id))


def _key_auth(record: Record | None) -> KeyAuth | None:
    if record is None:
        return None
    return KeyAuth(
        id=record["id"],
        company_id=record["company_id"],
        scopes=frozenset(record["scopes"]),
        rate_limit_per_minute=record["rate_limit_per_minute"],
        expires_at=record["expires_at"],
        revoked_at=record["revoked_at"],
    )


async def revoke_api_key(conn: Connection, company_id: UUID, key_id: UUID) -> ApiKey:
    """Revoke the company's key (idempotent: a revoked key keeps its first revocation time)."""
    record = await conn.fetchrow(_REVOKE_KEY, key_id, company_id)
    if record is None:
        raise NotFound(f"API key {key_id} not found")
    return _api_key(record)
