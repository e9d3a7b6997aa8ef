"""The transactions that end runs, group-committed (issue 16): every ending handed over while the
previous batch commits shares the next transaction — one commit, one WAL flush and one hold of
each company's row for all of them, instead of one each.

A batch takes its locks in the order every writer takes them, so two batches (or a batch and
the lease keeper, or the biller) never wait on each other in a cycle: the runs in id order (as
the batched rounds and the lease keeper lock them), then the suite runs counting them, then the
companies charged, in id order (DESIGN.md §7: the hottest lock is held shortest), then, at the
commit, each company's count of runs out of flight, in the order the runs ended: company order.

For each run, under its lease's fence: the last round's rows (if any), then the end — settled in
place when no judge is needed (`service.db.results.settle_run`), else only ended for the scorer.
A cancel requested meanwhile makes it `cancelled`. A run whose lease no longer holds is answered
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
    opened: list[_Opened] = []
    for pending in sorted(batch, key=lambda p: p.lease.run_id):  # the run rows, in id order
        try:
            opened.append(await _last_round(conn, pending))
        except LeaseLost as lost:  # its fenced statement matched no row: nothing of it was written
            outcomes[pending.lease.run_id] = lost
    settled: list[_Settled] = []
    # Ended in company order: the commit then counts them out of flight (migration 0018) company
    # by company, in the order every batch uses.
    for each in sorted(opened, key=lambda o: (o.company_id, o.pending.lease.run_id)):
        closed = await _close(conn, each)
        if isinstance(closed, _Settled):
            settled.append(closed)
        else:
            outcomes[each.pending.lease.run_id] = closed
    in_suites = sorted((s.run for s in settled if s.run.suite_run_id is not None), key=_by_suite_run)
    for run in in_suites:
        await count_run_done(conn, run)  # the last run of a suite run announces the suite run
    for done in sorted(settled, key=lambda s: (s.run.company_id, s.run.id)):
        owed = await settlement.charge(conn, done.run, done.total_cents)
        outcomes[done.run.id] = Closed(done.rows, (done.run, owed))
    return outcomes


async def _last_round(conn: Connection, pending: PendingEnding) -> _Opened:
    """Write the round's rows (or only advance the run) under the fence, which locks the run row;
    whether a cancel was requested. LeaseLost when the fence matched nothing (then nothing was
    written)."""
    lease = pending.lease
    if not pending.new:
        run = await claims.advance_run(conn, lease, events=0, active_ms=pending.active_ms)
        if run is None:
            raise LeaseLost()
        return _Opened(pending, [], run.cancel_requested_at is not None, run.company_id)
    round_ = await rounds.persist_round(
        conn, lease, pending.new, active_ms=pending.active_ms, now=pending.now, unless_cancelled=False
    )
    if round_ is None:
        raise LeaseLost()
    return _Opened(pending, round_.rows, round_.cancel_requested, round_.company_id)


async def _close(conn: Connection, opened: _Opened) -> Closed | _Settled:
    """End the run (locked by its last round); a settled run's charge is left to the caller,
    which takes the company rows last."""
    pending = opened.pending
    lease, rows = pending.lease, opened.rows
    ending = Ending("cancelled") if opened.cancelled else pending.ending
    if ending is None:
        return Closed(rows, None)
    verdict = pending.verdict
    if not settles_in_place(ending.status, verdict is not None):
        ended = await claims.finish_run(conn, lease, ending, pending.active_ms)  # with its end event
        if ended is None:
            raise LeaseLost()
        return Closed(rows, (ended, None))
    reckoning = await settlement.reckon(conn, lease.run_id, judge_cost_microcents=0)
    stored = _stored(verdict) if verdict is not None and needs_scoring(ending.status, False) else None
    run = await results.settle_run(
        conn, lease, ending, active_ms=pending.active_ms, verdict=stored, usage=reckoning.billed()
    )
    if run is None:
        raise LeaseLost()
    return _Settled(rows, run, reckoning.bill.total_cost_cents)


def _by_suite_run(run: RunRow) -> tuple[str, UUID]:
    return str(run.suite_run_id), run.id


def _stored(verdict: Evaluation) -> results.Verdict:
    return results.Verdict(verdict.model_dump(mode="json"), verdict.score, verdict.pass_fail)
