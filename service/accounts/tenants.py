"""Companies: creation with an opening balance (a ledger grant), and how many exist."""

from __future__ import annotations

from service.core.errors import FieldError, ValidationFailed
from service.core.ids import new_id
from service.db import companies, ledger
from service.db.postgres import Pool, connection, transaction


async def create_company(
    pool: Pool, name: str, *, credits_cents: int = 0, billing_email: str | None = None
) -> companies.CompanyRow:
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


async def count_companies(pool: Pool) -> int:
    async with connection(pool) as conn:
        return await companies.count_companies(conn)
