"""Dispatch (DESIGN.md §3): which runs are released to executors, and the sweeps that keep
released runs moving.

A released run holds a slot until its conversation is over. A company has at most `cap`
released, unfinished runs; a suite run at most its `parallelism`. Held runs are released
oldest first (suite runs in `position` order) by `release_held`, which every transaction that
creates runs or makes a released run terminal calls, and which the maintenance job calls every
few seconds. Decisions for one company are serialised by a transaction-scoped advisory lock, so
two releases never both fill the last slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from service.db import outbox
from service.db.core import Connection
from service.db.runs import RUN_COLUMNS, Run, run_from_record

COMPANY_LOCK_SPACE = 7_301  # pg_advisory_xact_lock(space, hashtext(company_id))

_LOCK_COMPANY = "SELECT pg_advisory_xact_lock($1, hashtext($2::text))"
_RELEASE_HELD = """
WITH inflight AS (
    SELECT count(*) AS n FROM eval_runs
    WHERE company_id = $1 AND released_at IS NOT NULL AND status IN ('queued', 'running')
), held AS (
    SELECT id, suite_run_id,
           row_number() OVER (PARTITION BY suite_run_id ORDER BY position, id) AS rank
    FROM eval_runs
    WHERE company_id = $1 AND released_at IS NULL AND status = 'queued'
), room AS (
    SELECT s.id, s.parallelism - count(r.id) FILTER (
               WHERE r.released_at IS NOT NULL AND r.status IN ('queued', 'running')) AS free
    FROM suite_runs s JOIN eval_runs r ON r.suite_run_id = s.id
    WHERE s.company_id = $1 AND s.done_at IS NULL
    GROUP BY s.id
), chosen AS (
    SELECT held.id FROM held LEFT JOIN room ON room.id = held.suite_run_id
    WHERE held.suite_run_id IS NULL OR held.rank <= room.free
    ORDER BY held.id
    LIMIT greatest(0, $2 - (SELECT n FROM inflight))
)
UPDATE eval_runs SET released_at = now(), dispatched_at = now(), updated_at = now()
WHERE id IN (SELECT id FROM chosen) AND released_at IS NULL AND status = 'queued'
RETURNING id
"""
_COMPANIES_WITH_HELD = """
SELECT DISTINCT company_id FROM eval_runs WHERE released_at IS NULL AND status = 'queued' LIMIT $1
"""
_EXPIRED_LEASES = f"""
SELECT {RUN_COLUMNS} FROM eval_runs
WHERE queue_status = 'claimed' AND status IN ('queued', 'running') AND lease_expires_at < now()
  AND (dispatched_at IS NULL OR dispatched_at < lease_expires_at
       OR dispatched_at < now() - make_interval(secs => $1))
ORDER BY lease_expires_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
_STALE_PENDING = f"""
SELECT {RUN_COLUMNS} FROM eval_runs
WHERE queue_status = 'pending' AND status = 'queued' AND released_at IS NOT NULL
  AND coalesce(dispatched_at, released_at) < now() - make_interval(secs => $1)
ORDER BY released_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
_MARK_DISPATCHED = "UPDATE eval_runs SET dispatched_at = now() WHERE id = ANY($1::uuid[])"
_END_LOST = f"""
UPDATE eval_runs
SET status = 'failed', termination_reason = 'error', error_code = 'EXECUTOR_LOST', error = $2,
    ended_at = now(), duration_ms = greatest(0, (extract(epoch FROM now() - started_at) * 1000)::int),
    updated_at = now()
WHERE id = $1 AND queue_status = 'claimed' AND status IN ('queued', 'running') AND lease_expires_at < now()
RETURNING {RUN_COLUMNS}
"""
_CANCEL_PENDING = f"""
UPDATE eval_runs
SET status = 'cancelled', termination_reason = 'cancelled', queue_status = 'done', ended_at = now(),
    done_at = now(), cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
WHERE id = $1 AND queue_status = 'pending' AND status = 'queued'
RETURNING {RUN_COLUMNS}
"""
_REQUEST_CANCEL = f"""
UPDATE eval_runs SET cancel_requested_at = now(), updated_at = now()
WHERE id = $1 AND status = 'running' AND cancel_requested_at IS NULL
RETURNING {RUN_COLUMNS}
"""


@dataclass(frozen=True)
class Released:
    run_id: UUID
    company_id: UUID


async def lock_company_dispatch(conn: Connection, company_id: UUID) -> None:
    """Serialise release decisions for one company until the transaction ends."""
    await conn.execute(_LOCK_COMPANY, COMPANY_LOCK_SPACE, str(company_id))


async def release_held(conn: Connection, company_id: UUID, cap: int) -> list[UUID]:
    """Release what fits under the company's cap and its suite runs' parallelism, oldest first,
    and write a run request for each; returns the released run ids."""
    await lock_company_dispatch(conn, company_id)
    released = [r["id"] for r in await conn.fetch(_RELEASE_HELD, company_id, cap)]
    for run_id in released:
        await outbox.append_run_request(conn, run_id, company_id)
    return released


async def companies_with_held_runs(conn: Connection, limit: int) -> list[UUID]:
    return [r["company_id"] for r in await conn.fetch(_COMPANIES_WITH_HELD, limit)]


async def claim_expired_leases(conn: Connection, redispatch_after_s: float, limit: int) -> list[Run]:
    """Claimed runs whose lease expired and that were not re-dispatched since (or not within
    `redispatch_after_s`); locked."""
    return [run_from_record(r) for r in await conn.fetch(_EXPIRED_LEASES, redispatch_after_s, limit)]


async def claim_stale_pending(conn: Connection, older_than_s: float, limit: int) -> list[Run]:
    """Released runs no executor claimed within `older_than_s` of their last dispatch; locked."""
    return [run_from_record(r) for r in await conn.fetch(_STALE_PENDING, older_than_s, limit)]


async def redispatch(conn: Connection, runs: list[Run]) -> None:
    """Write a fresh run request for each run (an executor claims it or resumes it)."""
    await conn.execute(_MARK_DISPATCHED, [run.id for run in runs])
    for run in runs:
        await outbox.append_run_request(conn, run.id, run.company_id)


async def end_lost_run(conn: Connection, run_id: UUID, error: str) -> Run | None:
    """Fail a run whose executors kept disappearing (`EXECUTOR_LOST`); None if it moved meanwhile."""
    record = await conn.fetchrow(_END_LOST, run_id, error)
    return None if record is None else run_from_record(record)


async def cancel_pending(conn: Connection, run_id: UUID) -> Run | None:
    """Cancel a run no executor has claimed: cancelled and done at once, cost 0; None if claimed."""
    record = await conn.fetchrow(_CANCEL_PENDING, run_id)
    return None if record is None else run_from_record(record)


async def request_cancel(conn: Connection, run_id: UUID) -> Run | None:
    """Flag a running run for cancellation at its next turn boundary; None if already flagged."""
    record = await conn.fetchrow(_REQUEST_CANCEL, run_id)
    return None if record is None else run_from_record(record)
