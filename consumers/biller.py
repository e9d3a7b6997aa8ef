"""The biller role: `run.scored` / `run.failed` / `run.cancelled` → one debit → `run.done`.

One transaction per run (DESIGN.md §7): lock the run; sum the priced turns and judge calls (the
biller never re-prices); record the costs and queue_status done, which NOTIFYs waiters; emit
`run.billed` and `run.done`; then lock the company, take what the balance covers (never below
zero), post the charge once (the ledger's unique index per run is the backstop) and record any
`uncollected_cents`. The company lock comes last so that contention on one company's balance
costs as little as possible; the transaction makes the order invisible to everyone else.
A run already done is left alone, so a redelivered event changes nothing and emits nothing; a
run the executor settled in place (`consumers.executor.persistence`) says so in the event itself,
so it is not even read.
"""

from __future__ import annotations

from uuid import UUID

from consumers.role import BATCHED_FETCH, BuiltRole, Role, RoleContext
from schemas.events import Event, Topic
from service.core.logging import get_logger
from service.db import results, runs
from service.db.postgres import Pool, transaction
from service.domain.lifecycle import BILLING_EVENTS, billable, settled_when_announced
from service.runs import settlement
from service.runs.suite_completion import count_run_done

log = get_logger("consumers.biller")


async def bill_run(pool: Pool, run_id: UUID) -> bool:
    """Finalise one run; False when there was nothing to do (not ready, or already done)."""
    async with transaction(pool) as conn:
        run = await runs.lock_run(conn, run_id)
        if run is None or not billable(run.status, run.queue_status, run.scored_at is not None):
            return False
        reckoning = await settlement.reckon(conn, run_id, run.judge_cost_microcents)
        done = await results.record_bill(conn, run_id, reckoning.billed())
        if done is None:  # billed meanwhile (unreachable while the run is locked): charge nothing
            return False
        await count_run_done(conn, done)  # the last run of a suite run announces the suite run
        # Money last: the company row stays locked only from here to the commit.
        owed = await settlement.charge(conn, run, reckoning.bill.total_cost_cents)
    settlement.report(run_id, owed)
    log.info("run_billed", run_id=str(run_id), total_cost_cents=reckoning.bill.total_cost_cents)
    return True


class Biller:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def handle(self, event: Event) -> None:
        # A run the executor settled says so in its own events: nothing to read, nothing to do.
        if event.type in BILLING_EVENTS and event.run_id is not None and not settled_when_announced(event):
            await bill_run(self._pool, event.run_id)


def build(context: RoleContext) -> BuiltRole:
    return BuiltRole(handler=Biller(context.pool).handle)


ROLE = Role(
    "biller",
    (Topic.RUN_EVENTS,),
    BILLING_EVENTS,
    build,
    fetch=BATCHED_FETCH,
)
