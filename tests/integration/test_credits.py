"""The trigger-time money check (402) and the ledger's invariants under concurrency."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.biller import bill_run
from service.accounts import credits
from service.core.errors import BillingError
from service.db import companies, ledger, runs
from service.db.postgres import Pool, connection, create_pool, transaction
from service.runs.funds import ensure_can_pay
from tests.support.factories import make_company, make_finished_run


async def test_a_company_that_can_pay_may_start_runs(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=5)
    async with connection(pool) as conn:
        await ensure_can_pay(conn, company.id, runs=5, min_run_balance_cents=1)


@pytest.mark.parametrize(("balance", "runs_requested", "minimum"), [(4, 5, 1), (0, 1, 1), (9, 2, 5)])
async def test_too_little_credit_for_the_runs_requested_is_a_402(
    pool: Pool, balance: int, runs_requested: int, minimum: int
) -> None:
    company = await make_company(pool, balance_cents=balance)
    async with connection(pool) as conn:
        with pytest.raises(BillingError, match=f"at least {runs_requested * minimum} cents") as caught:
            await ensure_can_pay(conn, company.id, runs=runs_requested, min_run_balance_cents=minimum)
    assert (caught.value.status, caught.value.code) == (402, "BILLING_ERROR")


async def test_a_suspended_company_may_not_start_runs_whatever_its_balance(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=10_000)
    async with transaction(pool) as conn:
        await companies.update_company(conn, company.id, name="Acme", is_suspended=True, billing_email=None)
    async with connection(pool) as conn:
        with pytest.raises(BillingError, match="suspended"):
            await ensure_can_pay(conn, company.id, runs=1, min_run_balance_cents=1)


Operation = tuple[str, int]  # ("bill", run index) or ("grant", cents)


async def _exercise(database_url: str, opening: int, costs: list[int], operations: list[Operation]) -> None:
    pool = await create_pool(database_url, min_size=4, max_size=12)
    try:
        company = await make_company(pool, balance_cents=opening)
        made = [
            await make_finished_run(pool, company.id, status="failed", turns=[("agent", "x", cost)])
            for cost in costs
        ]

        async def apply(op: Operation) -> None:
            kind, value = op
            if kind == "bill":
                await bill_run(pool, made[value].id)
            else:
                await credits.adjust_credits(pool, company.id, value, "top up")

        await asyncio.gather(*(apply(op) for op in operations))
        await _check_invariants(pool, company.id, [r.id for r in made])
    finally:
        await pool.close()


async def _check_invariants(pool: Pool, company_id: UUID, run_ids: list[UUID]) -> None:
    async with connection(pool) as conn:
        balance = (await companies.get_company(conn, company_id)).balance_cents
        entries = await ledger.list_ledger_entries(conn, company_id)
        assert await ledger.reconcile(conn) == []  # Σ ledger = balance, for every company
        billed = [await runs.get_run(conn, run_id) for run_id in run_ids]
    assert balance >= 0
    assert all(e.balance_after_cents >= 0 for e in entries)
    charges = [e.run_id for e in entries if e.kind == "eval_run_charge"]
    assert len(charges) == len(set(charges))  # at most one charge per run
    for run in billed:
        if run.queue_status == "done":
            charged = sum(-e.amount_cents for e in entries if e.run_id == run.id)
            assert charged + run.uncollected_cents == run.total_cost_cents


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    opening=st.integers(min_value=0, max_value=50),
    costs=st.lists(st.integers(min_value=0, max_value=30_000_000), min_size=1, max_size=6),
    data=st.data(),
)
def test_concurrent_charges_and_grants_never_overdraw_or_double_charge(
    database_url: str, opening: int, costs: list[int], data: st.DataObject
) -> None:
    bill_op = st.tuples(st.just("bill"), st.integers(min_value=0, max_value=len(costs) - 1))
    grant_op = st.tuples(st.just("grant"), st.integers(min_value=1, max_value=20))
    operations = data.draw(st.lists(st.one_of(bill_op, grant_op), min_size=1, max_size=20))
    asyncio.run(_exercise(database_url, opening, costs, operations))
