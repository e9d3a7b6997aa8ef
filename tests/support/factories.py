"""Rows for tests, written through the db layer (never raw INSERTs that could drift from it)."""

from __future__ import annotations

from uuid import UUID

from service.db import companies, ledger, runs
from service.db.core import Pool, transaction
from service.ids import new_id


async def make_company(pool: Pool, *, name: str = "Acme", balance_cents: int = 0) -> companies.Company:
    async with transaction(pool) as conn:
        company = await companies.insert_company(conn, new_id(), name)
        if balance_cents:
            await ledger.post_ledger_entry(
                conn, entry_id=new_id(), company_id=company.id, kind="grant", amount_cents=balance_cents
            )
        return await companies.get_company(conn, company.id)


async def make_run(
    pool: Pool, company_id: UUID, *, labels: dict[str, str] | None = None, released: bool = True
) -> runs.Run:
    new = runs.NewRun(
        id=new_id(),
        company_id=company_id,
        config={"case": {"name": "t"}},
        labels=labels or {},
        released=released,
    )
    async with transaction(pool) as conn:
        return await runs.insert_run(conn, new)
