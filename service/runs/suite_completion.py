"""A suite run's end: every transaction that makes one of its runs done (the biller's bill, a
cancel before the claim) counts that run under the suite run's lock; the count that reaches the
total announces `agent_eval.suite_run.done` with the final aggregate, exactly once."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.api import SuiteRunSummary
from schemas.events import EventType
from service.db import outbox, suite_runs
from service.db.postgres import Connection
from service.db.runs import RunRow
from service.db.suite_runs import MemberRun, SuiteRunRow
from service.domain import statistics
from service.domain.lifecycle import is_terminal


def outcome(member: MemberRun) -> statistics.Outcome:
    return statistics.outcome_of(member.status, member.queue_status, member.pass_fail)


def summary(row: SuiteRunRow, members: Sequence[MemberRun]) -> SuiteRunSummary:
    """The aggregate (reference §3.5): `pass_rate` is passed / completed as the reference defines
    it; the statistics' pass rate leaves inconclusive runs out."""
    completed = [m for m in members if m.status == "completed"]
    passed = sum(1 for m in completed if m.pass_fail is True)
    in_flight = sum(1 for m in members if not is_terminal(m.status))
    scores = [m.score for m in completed if m.score is not None]
    starts = [m.started_at for m in members if m.started_at is not None]
    ends = [m.ended_at for m in members if m.ended_at is not None]
    counts = statistics.tally(outcome(m) for m in members)
    return SuiteRunSummary(
        suite_run_id=row.id,
        suite_id=row.suite_id,
        total_runs=row.total_runs,
        completed=len(completed),
        in_flight=in_flight,
        cancelled=sum(1 for m in members if m.status == "cancelled"),
        passed=passed,
        failed=sum(1 for m in completed if m.pass_fail is False),
        errored=sum(1 for m in members if m.status == "failed"),
        inconclusive=counts.inconclusive,
        done=bool(members) and all(m.queue_status == "done" for m in members),
        total_cost_cents=sum(m.total_cost_cents for m in members),
        started_at=min(starts, default=None),
        ended_at=max(ends, default=None) if in_flight == 0 else None,
        score_avg=sum(scores) / len(scores) if scores else None,
        pass_rate=passed / len(completed) if completed else None,
    )


async def count_run_done(conn: Connection, run: RunRow) -> None:
    """Call in the transaction that made `run` done (after its own events are written)."""
    if run.suite_run_id is None:
        return
    counted = await suite_runs.count_done(conn, run.suite_run_id, run.id)
    if counted is None or not counted.finished:
        return
    row = await suite_runs.get_company_suite_run(conn, run.company_id, run.suite_run_id)
    members = await suite_runs.list_members(conn, row.id)
    await outbox.append_entity_event(
        conn, EventType.SUITE_RUN_DONE, run.company_id, row.id, summary(row, members)
    )
