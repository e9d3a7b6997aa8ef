"""The ledger: balances move only through entries, never below zero, one charge per run."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest

from service.accounts import credits
from service.core.errors import AlreadyCharged, NotFound, ValidationFailed
from service.core.ids import new_id
from service.db import companies, ledger
from service.db.postgres import Pool, connection, transaction
from tests.support.factories import make_company, make_run


async def _balance(pool: Pool, company_id: UUID) -> int:
    async with connection(pool) as conn:
        company = await companies.get_company(conn, company_id)
    return company.balance_cents


async def test_a_grant_moves_the_balance_and_records_it(pool: Pool) -> None:
    company = await make_company(pool)
    assert (await credits.adjust_credits(pool, company.id, 500, "top up"))[1] == 500
    assert (await credits.adjust_credits(pool, company.id, -200, "correction"))[1] == 300
    async with connection(pool) as conn:
        entries = await ledger.list_ledger_entries(conn, company.id)
    assert [(e.kind, e.amount_cents, e.balance_after_cents) for e in entries] == [
        ("grant", 500, 500),
        ("deduction", -200, 300),
    ]


async def test_a_deduction_beyond_the_balance_is_refused_and_writes_nothing(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=100)
    with pytest.raises(ValidationFailed, match="exceeds the balance"):
        await credits.adjust_credits(pool, company.id, -101, "too much")
    assert await _balance(pool, company.id) == 100
    async with connection(pool) as conn:
        assert len(await ledger.list_ledger_entries(conn, company.id)) == 1


async def test_zero_and_unknown_companies_are_refused(pool: Pool) -> None:
    company = await make_company(pool)
    with pytest.raises(ValidationFailed):
        await credits.adjust_credits(pool, company.id, 0, "nothing")
    with pytest.raises(NotFound):
        await credits.adjust_credits(pool, uuid4(), 10, "nobody")


async def test_a_run_is_charged_at_most_once(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=1000)
    run = await make_run(pool, company.id)

    async def charge() -> int | None:
        async with transaction(pool) as conn:
            return await ledger.post_ledger_entry(
                conn,
                entry_id=new_id(),
                company_id=company.id,
                kind="eval_run_charge",
                amount_cents=-30,
                run_id=run.id,
            )

    results = await asyncio.gather(*(charge() for _ in range(5)))
    assert sorted(results, key=lambda r: r is None) == [970, None, None, None, None]
    assert await _balance(pool, company.id) == 970


async def test_the_same_entry_id_is_posted_once(pool: Pool) -> None:
    company = await make_company(pool)
    entry_id = new_id()
    for expected in (50, None):
        async with transaction(pool) as conn:
            got = await ledger.post_ledger_entry(
                conn, entry_id=entry_id, company_id=company.id, kind="grant", amount_cents=50
            )
        assert got == expected
    assert await _balance(pool, company.id) == 50


async def test_concurrent_deductions_never_overdraw(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=100)

    async def deduct() -> bool:
        try:
            await credits.adjust_credits(pool, company.id, -30, "race")
        except ValidationFailed:
            return False
        return True

    outcomes = await asyncio.gather(*(deduct() for _ in range(6)))
    assert outcomes.count(True) == 3
    assert await _balance(pool, company.id) == 10
    assert await credits.reconcile(pool) == []


async def test_reconcile_finds_a_balance_edited_behind_the_ledger(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=100)
    assert await credits.reconcile(pool) == []
    async with connection(pool) as conn:
        await conn.execute("UPDATE companies SET balance_cents = 999 WHERE id = $1", company.id)
    assert await credits.reconcile(pool) == [ledger.Mismatch(company.id, 999, 100)]


async def test_the_database_refuses_a_negative_balance_even_without_the_function(pool: Pool) -> None:
    company = await make_company(pool)
    with pytest.raises(Exception, match="balance_cents_check"):
        async with connection(pool) as conn:
            await conn.execute("UPDATE companies SET balance_cents = -1 WHERE id = $1", company.id)


async def test_ledger_signs_are_enforced(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=10)
    with pytest.raises(Exception, match="credit_ledger_sign"):
        async with transaction(pool) as conn:
            await ledger.post_ledger_entry(
                conn, entry_id=new_id(), company_id=company.id, kind="grant", amount_cents=-5
            )


@pytest.mark.parametrize(
    ("balance", "total", "taken"),
    [(100, 30, 30), (50, 50, 50), (30, 100, 30), (0, 50, 0), (10, 0, 0), (0, 0, 0)],
)
async def test_a_run_charge_takes_what_the_balance_covers(
    pool: Pool, balance: int, total: int, taken: int
) -> None:
    company = await make_company(pool, balance_cents=balance)
    run = await make_run(pool, company.id)
    async with transaction(pool) as conn:
        got = await ledger.charge_run(
            conn, entry_id=new_id(), company_id=company.id, run_id=run.id, total_cents=total
        )
    assert got == taken
    assert await _balance(pool, company.id) == balance - taken
    async with connection(pool) as conn:
        charges = [
            e for e in await ledger.list_ledger_entries(conn, company.id) if e.kind == "eval_run_charge"
        ]
    assert [(e.amount_cents, e.balance_after_cents) for e in charges] == (
        [(-taken, balance - taken)] if taken else []
    )


async def test_a_second_charge_of_a_run_is_refused_and_changes_nothing(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=100)
    run = await make_run(pool, company.id)
    async with transaction(pool) as conn:
        await ledger.charge_run(conn, entry_id=new_id(), company_id=company.id, run_id=run.id, total_cents=10)
    with pytest.raises(AlreadyCharged):
        async with transaction(pool) as conn:
            await ledger.charge_run(
                conn, entry_id=new_id(), company_id=company.id, run_id=run.id, total_cents=10
            )
    assert await _balance(pool, company.id) == 90
