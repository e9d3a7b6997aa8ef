"""The trigger-time money check (DESIGN.md §7): refuse with 402 before creating runs that the
company cannot pay for, rather than failing them later."""

from __future__ import annotations

from uuid import UUID

from service.core.errors import BillingError
from service.db import companies
from service.db.cases import Funds
from service.db.postgres import Connection
from service.domain.ledger import billing_refusal


async def ensure_can_pay(conn: Connection, company_id: UUID, runs: int, min_run_balance_cents: int) -> None:
    """Raise BillingError (402) unless the company is active and holds `min * runs` cents."""
    company = await companies.get_company(conn, company_id)
    ensure_funded(Funds(company.balance_cents, company.is_suspended), runs, min_run_balance_cents)


def ensure_funded(funds: Funds, runs: int, min_run_balance_cents: int) -> None:
    """`ensure_can_pay` on funds already read (with the case, for a case run)."""
    refusal = billing_refusal(funds.is_suspended, funds.balance_cents, min_run_balance_cents, runs)
    if refusal is not None:
        raise BillingError(refusal)
