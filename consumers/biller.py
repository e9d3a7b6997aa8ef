"""The biller role: `run.scored` / `run.failed` / `run.cancelled` → one debit → `run.done`.

One transaction per run (DESIGN.md §7): lock the run; sum the priced turns and judge calls (the
biller never re-prices); record the costs and queue_status done, which NOTIFYs waiters; emit
`run.billed` and `run.done`; then lock the company, take what the balance covers (never below
zero), post the charge once (the ledger's unique index per run is the backstop) and record any
`uncollected_cents`. The company lock comes last so that contention on one company's balance
costs as little as possible; the transaction makes the order invisible to everyone else.
A run already done is left alone, so a redelivered event changes nothing and emits nothing.
"""

from __future__ import annotations

from uuid import UUID

from consumers.role import BuiltRole, Role, RoleContext
from schemas.events import Event, Topic
from service.core.ids import new_id
from service.core.logging import get_logger
from service.core.metrics import UNCOLLECTED_CENTS
from service.db import ledger, results, runs, turns
from service.db.postgres import Connection, Pool, transaction
from service.domain import pricing
from service.domain.ledger import Debit
from service.domain.lifecycle import BILLING_EVENTS, billable
from service.runs.suite_completion import count_run_done

log = get_logger("consumers.biller")


def billed_usage(
    run: runs.RunRow, usage: dict[str, turns.RoleUsage], bill: pricing.Bill, owed: Debit
) -> results.BilledUsage:
    agent, persona = usage.get("agent", turns.RoleUsage()), usage.get("persona", turns.RoleUsage())
    return results.BilledUsage(
        agent_input_tokens=agent.input_tokens,
        agent_output_tokens=agent.output_tokens,
        persona_input_tokens=persona.input_tokens,
        persona_output_tokens=persona.output_tokens,
        agent_cost_cents=bill.agent_cost_cents,
        persona_cost_cents=bill.persona_cost_cents,
        judge_cost_cents=bill.judge_cost_cents,
        total_cost_cents=bill.total_cost_cents,
        uncollected_cents=owed.uncollected_cents,
    )


async def bill_run(pool: Pool, run_id: UUID) -> bool:
    """Finalise one run; False when there was nothing to do (not ready, or already done)."""
    async with transaction(pool) as conn:
        run = await runs.lock_run(conn, run_id)
        if run is None or not billable(run.status, run.queue_status, run.scored_at is not None):
            return False
        usage = await turns.usage_by_role(conn, run_id)
        bill = pricing.bill(
            usage.get("agent", turns.RoleUsage()).cost_microcents,
            usage.get("persona", turns.RoleUsage()).cost_microcents,
            run.judge_cost_microcents,
        )
        done = await results.record_bill(conn, run_id, billed_usage(run, usage, bill, Debit(0, 0)))
        if done is None:  # billed meanwhile (unreachable while the run is locked): charge nothing
            return False
        await count_run_done(conn, done)  # the last run of a suite run announces the suite run
        # Money last: the company row stays locked only from here to the commit.
        owed = await _charge(conn, run, bill.total_cost_cents)
        if owed.uncollected_cents:
            await results.record_uncollected(conn, run_id, owed.uncollected_cents)
    if owed.uncollected_cents:
        UNCOLLECTED_CENTS.inc(owed.uncollected_cents)
        log.warning("run_cost_uncollected", run_id=str(run_id), uncollected_cents=owed.uncollected_cents)
    log.info("run_billed", run_id=str(run_id), total_cost_cents=bill.total_cost_cents)
    return True


async def _charge(conn: Connection, run: runs.RunRow, total_cents: int) -> Debit:
    """Take what the balance covers. A run charged before (unreachable while its lock is held)
    raises AlreadyCharged, which rolls the whole transaction back."""
    taken = await ledger.charge_run(
        conn, entry_id=new_id(), company_id=run.company_id, run_id=run.id, total_cents=total_cents
    )
    return Debit(taken, total_cents - taken)


class Biller:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def handle(self, event: Event) -> None:
        if event.type in BILLING_EVENTS and event.run_id is not None:
            await bill_run(self._pool, event.run_id)


def build(context: RoleContext) -> BuiltRole:
    return BuiltRole(handler=Biller(context.pool).handle)


ROLE = Role(
    "biller",
    (Topic.RUN_EVENTS,),
    BILLING_EVENTS,
    build,
)
