"""Credits: admin grants and deductions as ledger entries, and the balance-equals-ledger check."""

from __future__ import annotations

from uuid import UUID

from service.core.errors import (
    FieldError,
    InsufficientBalance,
    LedgerRefused,
    NotFound,
    UnknownCompany,
    ValidationFailed,
)
from service.core.ids import new_id
from service.db import ledger
from service.db.postgres import Pool, connection, transaction
from service.domain.ledger import adjustment_kind


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
                kind=adjustment_kind(amount_cents),
                amount_cents=amount_cents,
                reason=reason,
            )
        except UnknownCompany as exc:
            raise NotFound(f"Company {company_id} not found") from exc
        except InsufficientBalance as exc:
            raise ValidationFailed(
                "Deduction exceeds the balance", [FieldError("amount_cents", "exceeds the current balance")]
            ) from exc
    if balance is None:  # the entry id is fresh, so only a broken ledger function says "exists"
        raise LedgerRefused(f"ledger entry {entry_id} already exists")
    return entry_id, balance


async def reconcile(pool: Pool) -> list[ledger.Mismatch]:
    """Companies whose balance is not the sum of their ledger entries (empty when all balance)."""
    async with connection(pool) as conn:
        return await ledger.reconcile(conn)
