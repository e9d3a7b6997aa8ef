"""Companies, credits and API keys: the operations behind `agent-eval admin` and the admin API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from service.db import companies, ledger
from service.db.core import Pool, connection, transaction
from service.domain import keys
from service.errors import FieldError, NotFound, ValidationFailed
from service.ids import new_id


@dataclass(frozen=True)
class IssuedKey:
    """A newly created key: `key` is shown this once and never stored."""

    api_key: companies.ApiKey
    key: str


async def create_company(
    pool: Pool, name: str, *, credits_cents: int = 0, billing_email: str | None = None
) -> companies.Company:
    """A new company; an opening balance, if any, is posted as a ledger grant."""
    if not name.strip():
        raise ValidationFailed(fields=[FieldError("name", "must not be empty")])
    if credits_cents < 0:
        raise ValidationFailed(fields=[FieldError("credits_cents", "must not be negative")])
    async with transaction(pool) as conn:
        company = await companies.insert_company(conn, new_id(), name.strip(), billing_email)
        if credits_cents:
            await ledger.post_ledger_entry(
                conn,
                entry_id=new_id(),
                company_id=company.id,
                kind="grant",
                amount_cents=credits_cents,
                reason="opening balance",
            )
        return await companies.get_company(conn, company.id)


async def adjust_credits(pool: Pool, company_id: UUID, amount_cents: int, reason: str) -> tuple[UUID, int]:
    """Grant (positive) or deduct (negative) credits as a ledger entry; returns it and the new balance.

    A deduction larger than the balance is refused: balances never go negative.
    """
    if amount_cents == 0:
        raise ValidationFailed(fields=[FieldError("amount_cents", "must not be zero")])
    entry_id = new_id()
    async with transaction(pool) as conn:
        try:
            balance = await ledger.post_ledger_entry(
                conn,
                entry_id=entry_id,
                company_id=company_id,
                kind=ledger.kind_for_amount(amount_cents),
                amount_cents=amount_cents,
                reason=reason,
            )
        except ledger.UnknownCompany as exc:
            raise NotFound(f"Company {company_id} not found") from exc
        except ledger.InsufficientBalance as exc:
            raise ValidationFailed(
                "Deduction exceeds the balance", [FieldError("amount_cents", "exceeds the current balance")]
            ) from exc
    assert balance is not None  # a fresh entry id never collides
    return entry_id, balance


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
    unknown = keys.unknown_scopes(scopes)
    if unknown:
        raise ValidationFailed(fields=[FieldError("scopes", f"unknown scopes: {', '.join(unknown)}")])
    if rate_limit_per_minute < 1:
        raise ValidationFailed(fields=[FieldError("rate_limit_per_minute", "must be at least 1")])
    key = keys.format_api_key(secrets.token_bytes(keys.RANDOM_BYTES))
    async with transaction(pool) as conn:
        await companies.get_company(conn, company_id)
        api_key = await companies.insert_api_key(
            conn,
            companies.NewApiKey(
                id=new_id(),
                company_id=company_id,
                name=name,
                key_sha256=keys.hash_api_key(key),
                prefix=keys.shown_prefix(key),
                scopes=list(dict.fromkeys(scopes)),
                rate_limit_per_minute=rate_limit_per_minute,
                expires_at=expires_at,
            ),
        )
    return IssuedKey(api_key, key)


async def reconcile(pool: Pool) -> list[ledger.Mismatch]:
    """Companies whose balance is not the sum of their ledger entries (empty when all balance)."""
    async with connection(pool) as conn:
        return await ledger.reconcile(conn)


async def count_companies(pool: Pool) -> int:
    async with connection(pool) as conn:
        return await companies.count_companies(conn)
