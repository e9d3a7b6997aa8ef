"""Suite runs (`suite_runs`): one execution of a suite's cases, and the bookkeeping of its runs'
ends. Each run that becomes done is counted under the suite run's row lock, in the transaction
that makes it done: the count numbers the ends in commit order (`eval_runs.suite_seq`, the ids of
a suite stream) and the end that completes the count is the one that announces
`suite_run.done`, exactly once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from pydantic import JsonValue

from schemas.api import QueueStatus, RunStatus, TerminationReason
from service.core.errors import NotFound
from service.db.postgres import Connection, Record, fetch_one
from service.db.tables import fetch_page

JsonObject = dict[str, JsonValue]


@dataclass(frozen=True)
class SuiteRunRow:
    id: UUID
    company_id: UUID
    suite_id: UUID
    agent_overrides: JsonObject | None
    labels: dict[str, str]
    total_runs: int
    parallelism: int
    iterations: int
    done_runs: int
    rerun_of: UUID | None
    cancel_requested_at: datetime | None
    created_at: datetime
    done_at: datetime | None


@dataclass(frozen=True)
class NewSuiteRun:
    id: UUID
    company_id: UUID
    suite_id: UUID
    agent_overrides: JsonObject | None
    labels: dict[str, str]
    total_runs: int
    parallelism: int
    iterations: int
    rerun_of: UUID | None


@dataclass(frozen=True)
class MemberRun:
    """A run of a suite run, as the aggregate and the statistics need it."""

    id: UUID
    case_id: UUID | None
    case_name: str
    iteration: int | None
    position: int | None
    suite_seq: int | None
    status: RunStatus
    queue_status: QueueStatus
    termination_reason: TerminationReason | None
    score: float | None
    pass_fail: bool | None
    error_code: str | None
    total_cost_cents: int
    duration_ms: int | None
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class Counted:
    """A run's end, counted: its place among the suite run's ends, and whether it was the last."""

    suite_seq: int
    finished: bool


COLUMNS = ", ".join(f.name for f in fields(SuiteRunRow))
MEMBER_COLUMNS = ", ".join(
    "config->'case'->>'name' AS case_name" if f.name == "case_name" else f.name for f in fields(MemberRun)
)

_INSERT = f"""
INSERT INTO suite_runs (id, company_id, suite_id, agent_overrides, labels, total_runs, parallelism,
                        iterations, rerun_of)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {COLUMNS}
"""
_SELECT = f"SELECT {COLUMNS} FROM suite_runs WHERE id = $1 AND company_id = $2 AND suite_id = $3"
_SELECT_ANY_SUITE = f"SELECT {COLUMNS} FROM suite_runs WHERE id = $1 AND company_id = $2"
_LIST = f"""
SELECT {COLUMNS} FROM suite_runs WHERE company_id = $1 AND suite_id = $2 ORDER BY id DESC LIMIT $3 OFFSET $4
"""
_COUNT = "SELECT count(*) FROM suite_runs WHERE company_id = $1 AND suite_id = $2"
_LATEST_DONE = f"""
SELECT {COLUMNS} FROM suite_runs
WHERE company_id = $1 AND suite_id = $2 AND done_at IS NOT NULL AND id <> $3
ORDER BY id DESC LIMIT 1
"""
_MEMBERS = f"SELECT {MEMBER_COLUMNS} FROM eval_runs WHERE suite_run_id = $1 ORDER BY position"
_MEMBERS_DONE_AFTER = f"""
SELECT {MEMBER_COLUMNS} FROM eval_runs
WHERE suite_run_id = $1 AND suite_seq > $2 ORDER BY suite_seq LIMIT $3
"""
# The run is counted once (its suite_seq is set once); the suite run's row lock orders the counts.
_COUNT_DONE = """
WITH counted AS (
    UPDATE suite_runs
    SET done_runs = done_runs + 1,
        done_at = CASE WHEN done_runs + 1 >= total_runs THEN now() ELSE done_at END
    WHERE id = $1 AND EXISTS (SELECT 1 FROM eval_runs WHERE id = $2 AND suite_seq IS NULL)
    RETURNING done_runs, total_runs
), numbered AS (
    UPDATE eval_runs SET suite_seq = counted.done_runs FROM counted WHERE id = $2
    RETURNING suite_seq
)
SELECT counted.done_runs, counted.total_runs FROM counted, numbered
"""
_PROGRESS = "SELECT id, done_runs FROM suite_runs WHERE id = ANY($1::uuid[])"
_REQUEST_CANCEL = f"""
UPDATE suite_runs SET cancel_requested_at = coalesce(cancel_requested_at, now())
WHERE id = $1 AND company_id = $2 AND suite_id = $3
RETURNING {COLUMNS}
"""


def _row(record: Record) -> SuiteRunRow:
    return SuiteRunRow(**dict(record))


def _member(record: Record) -> MemberRun:
    return MemberRun(**dict(record))


async def insert_suite_run(conn: Connection, new: NewSuiteRun) -> SuiteRunRow:
    record = await fetch_one(
        conn,
        _INSERT,
        new.id,
        new.company_id,
        new.suite_id,
        new.agent_overrides,
        new.labels,
        new.total_runs,
        new.parallelism,
        new.iterations,
        new.rerun_of,
    )
    return _row(record)


async def get_suite_run(
    conn: Connection, company_id: UUID, suite_id: UUID, suite_run_id: UUID
) -> SuiteRunRow:
    """The suite's run, or NotFound (another company's, or another suite's, looks the same)."""
    record = await conn.fetchrow(_SELECT, suite_run_id, company_id, suite_id)
    if record is None:
        raise NotFound(f"Suite run {suite_run_id} not found")
    return _row(record)


async def get_company_suite_run(conn: Connection, company_id: UUID, suite_run_id: UUID) -> SuiteRunRow:
    """The company's suite run of any suite (a baseline may be another suite's), or NotFound."""
    record = await conn.fetchrow(_SELECT_ANY_SUITE, suite_run_id, company_id)
    if record is None:
        raise NotFound(f"Suite run {suite_run_id} not found")
    return _row(record)


async def latest_done(
    conn: Connection, company_id: UUID, suite_id: UUID, other_than: UUID
) -> SuiteRunRow | None:
    """The suite's newest finished run besides `other_than` (the `latest` baseline)."""
    record = await conn.fetchrow(_LATEST_DONE, company_id, suite_id, other_than)
    return None if record is None else _row(record)


async def list_suite_runs(
    conn: Connection, company_id: UUID, suite_id: UUID, *, limit: int, offset: int
) -> tuple[list[SuiteRunRow], int]:
    """The suite's runs, newest first, and how many there are."""
    rows, total = await fetch_page(conn, _LIST, _COUNT, [company_id, suite_id], limit=limit, offset=offset)
    return [_row(r) for r in rows], total


async def list_members(conn: Connection, suite_run_id: UUID) -> list[MemberRun]:
    """Every run of the suite run, in position order."""
    return [_member(r) for r in await conn.fetch(_MEMBERS, suite_run_id)]


async def list_members_done_after(
    conn: Connection, suite_run_id: UUID, after: int, limit: int
) -> list[MemberRun]:
    """The suite run's runs that became done after the `after`-th, in the order they did."""
    return [_member(r) for r in await conn.fetch(_MEMBERS_DONE_AFTER, suite_run_id, after, limit)]


async def count_done(conn: Connection, suite_run_id: UUID, run_id: UUID) -> Counted | None:
    """Count a run that just became done (in its transaction); None if it was counted before."""
    record = await conn.fetchrow(_COUNT_DONE, suite_run_id, run_id)
    if record is None:
        return None
    return Counted(record["done_runs"], record["done_runs"] >= record["total_runs"])


async def done_counts(conn: Connection, suite_run_ids: list[UUID]) -> dict[UUID, int]:
    """How many runs of each suite run are done (one query however many are asked about)."""
    return {r["id"]: r["done_runs"] for r in await conn.fetch(_PROGRESS, suite_run_ids)}


async def request_cancel(
    conn: Connection, company_id: UUID, suite_id: UUID, suite_run_id: UUID
) -> SuiteRunRow:
    record = await conn.fetchrow(_REQUEST_CANCEL, suite_run_id, company_id, suite_id)
    if record is None:
        raise NotFound(f"Suite run {suite_run_id} not found")
    return _row(record)
