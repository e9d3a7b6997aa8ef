"""Runs (`eval_runs`): insert and fetch, the summary events carry, and the stuck-run census."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from uuid import UUID

from pydantic import JsonValue

from schemas.api import QueueStatus, RunStatus, RunSummary, TerminationReason
from service.core.errors import NotFound
from service.db import states
from service.db.postgres import Connection, Record, fetch_one

JsonObject = dict[str, JsonValue]


@dataclass(frozen=True)
class RunRow:
    """One `eval_runs` row."""

    id: UUID
    company_id: UUID
    case_id: UUID | None
    suite_id: UUID | None
    suite_run_id: UUID | None
    agent_id: UUID | None
    persona_id: UUID | None
    mode: str
    config: JsonObject
    agent_overrides: JsonObject | None
    labels: dict[str, str]
    status: RunStatus
    queue_status: QueueStatus
    termination_reason: TerminationReason | None
    released_at: datetime | None
    position: int | None
    claimed_by: str | None
    lease_expires_at: datetime | None
    attempt: int
    cancel_requested_at: datetime | None
    last_event_seq: int
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    done_at: datetime | None
    score: float | None
    pass_fail: bool | None
    evaluation: JsonObject | None
    agent_model: str | None
    persona_model: str | None
    agent_input_tokens: int
    agent_output_tokens: int
    persona_input_tokens: int
    persona_output_tokens: int
    judge_input_tokens: int
    judge_output_tokens: int
    agent_cost_cents: int
    persona_cost_cents: int
    judge_cost_cents: int
    total_cost_cents: int
    uncollected_cents: int
    error: str | None
    error_code: str | None
    created_at: datetime
    updated_at: datetime
    judge_cost_microcents: int
    judge_rate_card_version: str | None
    scored_at: datetime | None
    last_swept_at: datetime | None
    dispatched_at: datetime | None
    active_ms: int
    handed_back: int
    iteration: int | None
    suite_seq: int | None

    def summary(self) -> RunSummary:
        """The run fields every run lifecycle event carries."""
        return RunSummary(
            id=self.id,
            case_id=self.case_id,
            suite_id=self.suite_id,
            suite_run_id=self.suite_run_id,
            status=self.status,
            queue_status=self.queue_status,
            termination_reason=self.termination_reason,
            score=self.score,
            pass_fail=self.pass_fail,
            total_cost_cents=self.total_cost_cents,
            error_code=self.error_code,
            labels=self.labels,
        )


def queued_summary(
    run_id: UUID,
    *,
    case_id: UUID | None = None,
    suite_id: UUID | None = None,
    suite_run_id: UUID | None = None,
    labels: dict[str, str] | None = None,
) -> RunSummary:
    """What a new run looks like: queued, pending, nothing scored or spent."""
    return RunSummary(
        id=run_id,
        case_id=case_id,
        suite_id=suite_id,
        suite_run_id=suite_run_id,
        status="queued",
        queue_status="pending",
        termination_reason=None,
        score=None,
        pass_fail=None,
        total_cost_cents=0,
        error_code=None,
        labels=labels or {},
    )


RUN_COLUMNS = ", ".join(f.name for f in fields(RunRow))
DONE_CHANNEL = "agent_eval_runs"  # NOTIFY payload: the id of a run that became done


def run_from_record(record: Record, extra: tuple[str, ...] = ()) -> RunRow:
    """The row as a Run; `extra` names columns a statement returns beyond the table's."""
    values = dict(record)
    for name in extra:
        values.pop(name, None)
    return RunRow(**values)


@dataclass(frozen=True)
class NewRun:
    """What creating a run needs; status starts queued/pending."""

    id: UUID
    company_id: UUID
    config: JsonObject
    case_id: UUID | None = None
    suite_id: UUID | None = None
    suite_run_id: UUID | None = None
    agent_id: UUID | None = None
    persona_id: UUID | None = None
    agent_overrides: JsonObject | None = None
    labels: dict[str, str] = field(default_factory=dict)
    released: bool = True
    position: int | None = None
    agent_model: str | None = None
    persona_model: str | None = None
    iteration: int | None = None


def insert_run_sql(last_event_seq: str = "0") -> str:
    """`INSERT INTO eval_runs … RETURNING` the row, its values as `new_run_values` in $1..$15;
    `last_event_seq` is SQL (a statement that announces the run counts its events there)."""
    return f"""
INSERT INTO eval_runs (id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, config,
                       agent_overrides, labels, released_at, position, agent_model, persona_model,
                       iteration, last_event_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $11 THEN now() END, $12, $13, $14, $15,
        {last_event_seq})
RETURNING {RUN_COLUMNS}
"""


def new_run_values(new: NewRun) -> tuple[object, ...]:
    return (
        new.id,
        new.company_id,
        new.case_id,
        new.suite_id,
        new.suite_run_id,
        new.agent_id,
        new.persona_id,
        new.config,
        new.agent_overrides,
        new.labels,
        new.released,
        new.position,
        new.agent_model,
        new.persona_model,
        new.iteration,
    )


_INSERT_RUN = insert_run_sql()
_SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM eval_runs WHERE id = $1"
_SELECT_COMPANY_RUN = f"SELECT {RUN_COLUMNS} FROM eval_runs WHERE id = $1 AND company_id = $2"

# Runs that should be moving but are not (DESIGN.md §2): released but unclaimed for 30 s, a
# claimed run whose lease expired, a finished conversation not finalised within 2 minutes.
_COUNT_STUCK = f"""
SELECT
    count(*) FILTER (WHERE queue_status = {states.PENDING} AND status = {states.QUEUED}
                     AND released_at < now() - interval '30 seconds') AS unclaimed,
    count(*) FILTER (WHERE queue_status = {states.CLAIMED} AND status IN {states.UNFINISHED}
                     AND lease_expires_at < now()) AS lease_expired,
    count(*) FILTER (WHERE queue_status <> {states.DONE} AND status IN {states.TERMINAL}
                     AND ended_at < now() - interval '2 minutes') AS unfinalised
FROM eval_runs
WHERE queue_status <> {states.DONE}
"""


async def insert_run(conn: Connection, new: NewRun) -> RunRow:
    """Create a run (queued, pending), released now unless `new.released` is false, without
    announcing it (`service.db.run_creation.create_run` does both)."""
    record = await fetch_one(conn, _INSERT_RUN, *new_run_values(new))
    return run_from_record(record)


async def fetch_run(conn: Connection, run_id: UUID, company_id: UUID | None = None) -> RunRow | None:
    """The run, or None; with `company_id`, another company's run is None too."""
    if company_id is None:
        record = await conn.fetchrow(_SELECT_RUN, run_id)
    else:
        record = await conn.fetchrow(_SELECT_COMPANY_RUN, run_id, company_id)
    return None if record is None else run_from_record(record)


async def get_run(conn: Connection, run_id: UUID, company_id: UUID | None = None) -> RunRow:
    """The run, or NotFound."""
    run = await fetch_run(conn, run_id, company_id)
    if run is None:
        raise NotFound(f"Run {run_id} not found")
    return run


_LOCK_RUN = f"SELECT {RUN_COLUMNS} FROM eval_runs WHERE id = $1 FOR NO KEY UPDATE"
_UNFINALISED = f"""
SELECT {RUN_COLUMNS} FROM eval_runs
WHERE queue_status <> {states.DONE} AND status IN {states.TERMINAL}
  AND ended_at < now() - make_interval(secs => $1)
  AND (last_swept_at IS NULL OR last_swept_at < now() - make_interval(secs => $1))
ORDER BY ended_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
_MARK_SWEPT = "UPDATE eval_runs SET last_swept_at = now() WHERE id = $1"
_PROGRESS = "SELECT status, queue_status FROM eval_runs WHERE id = $1 AND company_id = $2"
_EVENT_SEQS = "SELECT id, last_event_seq FROM eval_runs WHERE id = ANY($1::uuid[])"
_DONE_AMONG = f"SELECT id FROM eval_runs WHERE id = ANY($1::uuid[]) AND queue_status = {states.DONE}"


async def lock_run(conn: Connection, run_id: UUID) -> RunRow | None:
    """The run, locked for the rest of the transaction (every state change of a run takes this).
    FOR NO KEY UPDATE, so writers of rows that reference the run (turns, charges) are not blocked."""
    record = await conn.fetchrow(_LOCK_RUN, run_id)
    return None if record is None else run_from_record(record)


async def fetch_progress(
    conn: Connection, run_id: UUID, company_id: UUID
) -> tuple[RunStatus, QueueStatus] | None:
    """Just the run's `status` and `queue_status` (what a waiter checks), or None."""
    record = await conn.fetchrow(_PROGRESS, run_id, company_id)
    return None if record is None else (record["status"], record["queue_status"])


async def done_among(conn: Connection, run_ids: list[UUID]) -> list[UUID]:
    """Which of these runs are done (one query however many are asked about)."""
    return [r["id"] for r in await conn.fetch(_DONE_AMONG, run_ids)]


async def last_event_sequences(conn: Connection, run_ids: list[UUID]) -> dict[UUID, int]:
    """Each run's latest event sequence (one query however many are asked about)."""
    return {r["id"]: r["last_event_seq"] for r in await conn.fetch(_EVENT_SEQS, run_ids)}


async def claim_unfinalised(conn: Connection, older_than_s: float, limit: int) -> list[RunRow]:
    """Terminal runs not done for `older_than_s` and not swept since; locked (SKIP LOCKED)."""
    return [run_from_record(r) for r in await conn.fetch(_UNFINALISED, older_than_s, limit)]


async def mark_swept(conn: Connection, run_id: UUID) -> None:
    await conn.execute(_MARK_SWEPT, run_id)


async def count_stuck_runs(conn: Connection) -> dict[str, int]:
    """How many runs are stuck, by reason: `unclaimed`, `lease_expired`, `unfinalised`."""
    record = await fetch_one(conn, _COUNT_STUCK)
    return {key: int(record[key]) for key in ("unclaimed", "lease_expired", "unfinalised")}
