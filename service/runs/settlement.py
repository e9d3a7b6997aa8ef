"""A run's money (DESIGN.md §7), whoever settles it: the biller after the scorer, or the executor
in the transaction that ends a conversation needing no judge.

`reckon` sums the run's priced turns (nothing is re-priced) and its judge calls into whole cents.
`charge` takes what the balance covers, once: call it as the transaction's last write, so the
company row, the hottest lock, is held only until the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from service.core.ids import new_id
from service.core.logging import get_logger
from service.core.metrics import UNCOLLECTED_CENTS
from service.db import ledger, results, turns
from service.db.postgres import Connection
from service.db.runs import RunRow
from service.domain import pricing
from service.domain.ledger import Debit

log = get_logger("service.runs.settlement")


@dataclass(frozen=True)
class Reckoning:
    """The run's tokens by role and its bill in whole cents."""

    usage: dict[str, turns.RoleUsage]
    bill: pricing.Bill

    def billed(self) -> results.BilledUsage:
        """The columns the run is finalised with (what the balance cannot cover is set by `charge`)."""
        agent = self.usage.get("agent", turns.RoleUsage())
        persona = self.usage.get("persona", turns.RoleUsage())
        return results.BilledUsage(
            agent_input_tokens=agent.input_tokens,
            agent_output_tokens=agent.output_tokens,
            persona_input_tokens=persona.input_tokens,
            persona_output_tokens=persona.output_tokens,
            agent_cost_cents=self.bill.agent_cost_cents,
            persona_cost_cents=self.bill.persona_cost_cents,
            judge_cost_cents=self.bill.judge_cost_cents,
            total_cost_cents=self.bill.total_cost_cents,
            uncollected_cents=0,
        )


async def reckon(conn: Connection, run_id: UUID, judge_cost_microcents: int) -> Reckoning:
    """The bill of the run's persisted turns (this transaction's own included) and judge calls."""
    usage = (await turns.usage_by_role_of_runs(conn, [run_id]))[run_id]
    return _reckoning(usage, judge_cost_microcents)


async def reckon_runs(conn: Connection, run_ids: Sequence[UUID]) -> dict[UUID, Reckoning]:
    """`reckon` for several runs without judge calls, in one query."""
    usage = await turns.usage_by_role_of_runs(conn, run_ids)
    return {run_id: _reckoning(usage[run_id], 0) for run_id in run_ids}


def _reckoning(usage: dict[str, turns.RoleUsage], judge_cost_microcents: int) -> Reckoning:
    bill = pricing.bill(
        usage.get("agent", turns.RoleUsage()).cost_microcents,
        usage.get("persona", turns.RoleUsage()).cost_microcents,
        judge_cost_microcents,
    )
    return Reckoning(usage, bill)


async def charge(conn: Connection, run: RunRow, total_cents: int) -> Debit:
    """Take what the balance covers and record the rest on the run as `uncollected_cents`. A run
    charged before (unreachable while its row is locked) raises AlreadyCharged, which rolls the
    whole transaction back."""
    return (await charge_runs(conn, [(run, total_cents)]))[run.id]


async def charge_runs(conn: Connection, runs: Sequence[tuple[RunRow, int]]) -> dict[UUID, Debit]:
    """`charge` for each (run, total cents), in the given order (company rows are locked in it),
    in one round trip plus one statement per run the balance fell short for."""
    taken = await ledger.charge_runs(
        conn, [ledger.RunCharge(new_id(), run.company_id, run.id, total) for run, total in runs]
    )
    owed = {run.id: Debit(taken[run.id], total - taken[run.id]) for run, total in runs}
    for run_id, debit in owed.items():
        if debit.uncollected_cents:
            await results.record_uncollected(conn, run_id, debit.uncollected_cents)
    return owed


def report(run_id: UUID, owed: Debit) -> None:
    """After the commit: count and say what the balance did not cover."""
    if owed.uncollected_cents:
        UNCOLLECTED_CENTS.inc(owed.uncollected_cents)
        log.warning("run_cost_uncollected", run_id=str(run_id), uncollected_cents=owed.uncollected_cents)
