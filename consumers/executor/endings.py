"""The transactions that end runs, group-committed (issue 16): every ending handed over while the
batches in flight commit shares the next transaction — one commit, one WAL flush and one hold of
each company's row for all of them, instead of one each.

A batch takes its locks in the order every writer takes them, so two batches (or a batch and
the lease keeper, or the biller) never wait on each other in a cycle: the runs in id order (as
the batched rounds and the lease keeper lock them), then the suite runs counting them, then the
companies charged, in id order (DESIGN.md §7: the hottest lock is held shortest), then, at the
commit, each company's count of runs out of flight, in the order the runs ended: company order.

For each run, under its lease's fence: the last round's rows (if any), then the end — settled in
place when no judge is needed (`service.db.results.settle_runs`), else only ended for the scorer.
A cancel requested meanwhile makes it `cancelled`. The batch's statements are set-wise or
pipelined, so a batch costs a handful of round trips whatever its size: the last rounds (one
statement), the bills (one query), each company's settlements (one pipelined round trip), the
charges (one pipelined round trip), the commit. A run whose lease no longer holds is answered
`LeaseLost` and nothing of it is written; the others go on. Any other failure rolls the batch
back, and each of its endings is then tried in a transaction of its own, so one run's failure
is its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from schemas.evaluation import Evaluation
from service.core.errors import LeaseLost
from service.db import claims, results, rounds, turns
from service.db.claims import Lease
from service.db.postgres import Connection, Pool, transaction
from service.db.runs import RunRow
from service.domain.ledger import Debit
from service.domain.lifecycle import Ending, needs_scoring, settles_in_place
from service.runs import settlement
from service.runs.suite_completion import count_run_done


@dataclass(frozen=True)
class PendingEnding:
    """A run's last round (`new`, possibly none) and how it ends; `ending` None: the round goes on
    unless a cancel was requested (a common round the batched statement refused)."""

    lease: Lease
    new: Sequence[turns.NewTurn]
    ending: Ending | None
    active_ms: int
    now: datetime
    verdict: Evaluation | None = None  # the transcript's evaluation when no judge is needed


@dataclass(frozen=True)
class Closed:
    """What a batch did with one run: the rows it wrote, and the run as it ended (with its charge
    when it was settled); `ended` None: the run goes on."""

    rows: list[turns.TurnRow]
    ended: tuple[RunRow, Debit | None] | None


@dataclass(frozen=True)
class _Opened:
    """A run of the batch whose last round is written (its row locked until the commit)."""

    pending: PendingEnding
    rows: list[turns.TurnRow]
    cancelled: bool  # a cancel was requested: the run ends `cancelled`, whatever else it said
    company_id: UUID


@dataclass(frozen=True)
class _Settled:
    rows: list[turns.TurnRow]
    run: RunRow
    total_cents: int


async def end_all(pool: Pool, batch: Sequence[PendingEnding]) -> dict[UUID, Closed | Exception]:
    """Write the batch in one transaction; if that fails, each ending in one of its own."""
    try:
        async with transaction(pool) as conn:
            return await _end_together(conn, batch)
    except Exception:
        if len(batch) == 1:
            raise
    outcomes: dict[UUID, Closed | Exception] = {}
    for pending in batch:
        try:
            async with transaction(pool) as conn:
                outcomes |= await _end_together(conn, [pending])
        except Exception as exc:  # this run's own failure: its conversation decides
            outcomes[pending.lease.run_id] = exc
    return outcomes


async def _end_together(conn: Connection, batch: Sequence[PendingEnding]) -> dict[UUID, Closed | Exception]:
    outcomes: dict[UUID, Closed | Exception] = {}
    opened = await _last_rounds(conn, batch, outcomes)
    plans = [(each, _ending_of(each)) for each in opened]
    reckonings = await settlement.reckon_runs(
        conn, [each.pending.lease.run_id for each, ending in plans if _settles(each, ending)]
    )
    settled: list[_Settled] = []
    # Ended company by company, in the order every batch uses: the commit then counts them out of
    # flight (migration 0018) in that order.
    for company_plans in _by_company(plans):
        closed, company_settled = await _close_company(conn, company_plans, reckonings)
        outcomes |= closed
        settled += company_settled
    in_suites = sorted((s.run for s in settled if s.run.suite_run_id is not None), key=_by_suite_run)
    for run in in_suites:
        await count_run_done(conn, run)  # the last run of a suite run announces the suite run
    charged = sorted(settled, key=lambda s: (s.run.company_id, s.run.id))
    owed = await settlement.charge_runs(conn, [(done.run, done.total_cents) for done in charged])
    for done in charged:
        outcomes[done.run.id] = Closed(done.rows, (done.run, owed[done.run.id]))
    return outcomes


async def _last_rounds(
    conn: Connection, batch: Sequence[PendingEnding], outcomes: dict[UUID, Closed | Exception]
) -> list[_Opened]:
    """Write every run's last round (or only advance the run) in one statement under its fence,
    which locks the run rows in id order; whether a cancel was requested. A run whose fence
    matched nothing is answered LeaseLost in `outcomes` (nothing of it was written)."""
    pending_rounds = [rounds.PendingRound(p.lease, p.new, p.active_ms, p.now) for p in batch]
    written = await rounds.persist_rounds(conn, pending_rounds, unless_cancelled=False)
    opened: list[_Opened] = []
    for pending in batch:
        round_ = written.get(pending.lease.run_id)
        if round_ is None:
            outcomes[pending.lease.run_id] = LeaseLost()
        else:
            opened.append(_Opened(pending, round_.rows, round_.cancel_requested, round_.company_id))
    return opened


def _ending_of(opened: _Opened) -> Ending | None:
    """How the run ends: `cancelled` once a cancel was requested, whatever else it said."""
    return Ending("cancelled") if opened.cancelled else opened.pending.ending


def _settles(opened: _Opened, ending: Ending | None) -> bool:
    return ending is not None and settles_in_place(ending.status, opened.pending.verdict is not None)


_Plan = tuple[_Opened, Ending | None]


def _by_company(plans: Sequence[_Plan]) -> list[list[_Plan]]:
    """The plans grouped by company, companies in id order, runs in id order within each."""
    groups: dict[UUID, list[_Plan]] = {}
    for plan in sorted(plans, key=lambda p: (p[0].company_id, p[0].pending.lease.run_id)):
        groups.setdefault(plan[0].company_id, []).append(plan)
    return list(groups.values())


async def _close_company(
    conn: Connection, plans: Sequence[_Plan], reckonings: dict[UUID, settlement.Reckoning]
) -> tuple[dict[UUID, Closed], list[_Settled]]:
    """End one company's runs (locked by their last rounds): those that settle in place together
    in one round trip (their charges are left to the caller, which takes the company rows last),
    the others (left to the scorer) one statement each; a run that goes on is only answered."""
    closed: dict[UUID, Closed] = {}
    settling: list[results.Settling] = []
    rows: dict[UUID, list[turns.TurnRow]] = {}
    for each, ending in plans:
        pending = each.pending
        lease = pending.lease
        if ending is None:
            closed[lease.run_id] = Closed(each.rows, None)
        elif _settles(each, ending):
            verdict = pending.verdict
            stored = _stored(verdict) if verdict is not None and needs_scoring(ending.status, False) else None
            usage = reckonings[lease.run_id].billed()
            settling.append(results.Settling(lease, ending, pending.active_ms, stored, usage))
            rows[lease.run_id] = each.rows
        else:
            ended = await claims.finish_run(conn, lease, ending, pending.active_ms)  # with its end event
            if ended is None:
                raise LeaseLost()
            closed[lease.run_id] = Closed(each.rows, (ended, None))
    ran = await results.settle_runs(conn, settling)
    if len(ran) < len(settling):  # unreachable while their rows are locked: fail the batch
        raise LeaseLost()
    total = {run_id: reckonings[run_id].bill.total_cost_cents for run_id in ran}
    return closed, [_Settled(rows[run_id], run, total[run_id]) for run_id, run in ran.items()]


def _by_suite_run(run: RunRow) -> tuple[str, UUID]:
    return str(run.suite_run_id), run.id


def _stored(verdict: Evaluation) -> results.Verdict:
    return results.Verdict(verdict.model_dump(mode="json"), verdict.score, verdict.pass_fail)
