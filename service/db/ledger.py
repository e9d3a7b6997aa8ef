"""The credit ledger: append-only entries; balances move only through `post_ledger_entry()`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal
from uuid import UUID

from service.core.errors import AlreadyCharged, ConstraintViolation, InsufficientBalance, UnknownCompany
from service.db.postgres import Connection, Record, translate

LedgerKind = Literal["grant", "deduction", "eval_run_charge", "refund"]

BALANCE_CONSTRAINT = "companies_balance_cents_check"
FOREIGN_KEY_VIOLATION = "23503"


@dataclass(frozen=True)
class LedgerEntry:
    """One `credit_ledger` row; `amount_cents` is signed (credits positive)."""

    id: UUID
    company_id: UUID
    kind: LedgerKind
    amount_cents: int
    balance_after_cents: int
    run_id: UUID | None
    reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class Mismatch:
    """A company whose balance differs from the sum of its ledger entries."""

    company_id: UUID
    balance_cents: int
    ledger_sum_cents: int


LEDGER_COLUMNS = ", ".join(f.name for f in fields(LedgerEntry))

_POST = "SELECT post_ledger_entry($1, $2, $3, $4, $5, $6)"
_SELECT_ENTRIES = f"SELECT {LEDGER_COLUMNS} FROM credit_ledger WHERE company_id = $1 ORDER BY created_at, id"
_RECONCILE = """
SELECT c.id AS company_id, c.balance_cents, coalesce(l.total, 0) AS ledger_sum_cents
FROM companies c
LEFT JOIN (SELECT company_id, sum(amount_cents) AS total FROM credit_ledger GROUP BY company_id) l
       ON l.company_id = c.id
WHERE c.balance_cents <> coalesce(l.total, 0)
ORDER BY c.id
"""


async def post_ledger_entry(
    conn: Connection,
    *,
    entry_id: UUID,
    company_id: UUID,
    kind: LedgerKind,
    amount_cents: int,
    run_id: UUID | None = None,
    reason: str | None = None,
) -> int | None:
    """Insert an entry and move the balance in the caller's transaction.

    Returns the new balance in cents, or None when the entry already exists (the same id, or
    this run's charge): then nothing changed. Raises InsufficientBalance rather than let a
    balance go below zero, and UnknownCompany for a missing company.
    """
    try:
        balance = await conn.fetchval(_POST, entry_id, company_id, kind, amount_cents, run_id, reason)
    except Exception as exc:
        ours = translate(exc)
        if isinstance(ours, ConstraintViolation) and ours.constraint == BALANCE_CONSTRAINT:
            raise InsufficientBalance(str(ours)) from exc
        if isinstance(ours, ConstraintViolation) and ours.sqlstate == FOREIGN_KEY_VIOLATION:
            raise UnknownCompany(str(ours)) from exc
        raise
    return None if balance is None else int(balance)


_CHARGE_RUNS = "SELECT $3::uuid AS run_id, charge_run($1, $2, $3, $4) AS taken"


@dataclass(frozen=True)
class RunCharge:
    """One run to debit with `charge_runs`: a fresh entry id, the run's company and its total."""

    entry_id: UUID
    company_id: UUID
    run_id: UUID
    total_cents: int


async def charge_runs(conn: Connection, charges: Sequence[RunCharge]) -> dict[UUID, int]:
    """`charge_run` for each run, in the given order (the order the company rows are locked in),
    in one round trip: the cents taken by run. Raises AlreadyCharged if any run had a charge
    already (the caller's transaction must then roll back)."""
    if not charges:
        return {}
    records = await conn.fetchmany(
        _CHARGE_RUNS, [(c.entry_id, c.company_id, c.run_id, c.total_cents) for c in charges]
    )
    taken: dict[UUID, int] = {}
    for record in records:
        if record["taken"] is None:
            raise AlreadyCharged(f"run {record['run_id']} was charged before")
        taken[record["run_id"]] = int(record["taken"])
    return taken


async def charge_run(
    conn: Connection, *, entry_id: UUID, company_id: UUID, run_id: UUID, total_cents: int
) -> int:
    """Debit a run: take LEAST(balance, total) in one statement (DESIGN.md §7). Returns the cents
    taken (0: no ledger row), or raises AlreadyCharged when the run has a charge already."""
    taken = await charge_runs(conn, [RunCharge(entry_id, company_id, run_id, total_cents)])
    return taken[run_id]


async def list_ledger_entries(conn: Connection, company_id: UUID) -> list[LedgerEntry]:
    """A company's entries in the order they were posted."""
    return [_entry(r) for r in await conn.fetch(_SELECT_ENTRIES, company_id)]


async def reconcile(conn: Connection) -> list[Mismatch]:
    """Every company whose balance is not the sum of its entries (empty when the books balance)."""
    return [Mismatch(**dict(r)) for r in await conn.fetch(_RECONCILE)]


def _entry(record: Record) -> LedgerEntry:
    return LedgerEntry(**dict(record))
