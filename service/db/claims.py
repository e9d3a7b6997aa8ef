"""The executor's writes on a run (DESIGN.md §3 Claim and lease): the claim, and every later
write fenced by `claimed_by` and `attempt`, so an executor that lost its lease writes nothing.

A `Lease` names who holds a run and under which attempt. Every fenced statement matches zero
rows once another executor has re-claimed the run (or the run ended), and the caller then drops
the run without writing (`lease_lost`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from schemas.api import RunStatus, TerminationReason
from service.db.core import Connection
from service.db.runs import RUN_COLUMNS, Run, run_from_record


@dataclass(frozen=True)
class Lease:
    run_id: UUID
    executor: str
    attempt: int


@dataclass(frozen=True)
class Ending:
    """How a conversation ended: the status, the reason and, for failures, what went wrong."""

    status: RunStatus
    reason: TerminationReason
    error: str | None = None
    error_code: str | None = None


_CLAIM = f"""
UPDATE eval_runs
SET status = 'running', queue_status = 'claimed', claimed_by = $2, attempt = attempt + 1,
    lease_expires_at = now() + make_interval(secs => $3), started_at = coalesce(started_at, now()),
    updated_at = now()
WHERE id = $1 AND released_at IS NOT NULL AND status IN ('queued', 'running')
  AND (queue_status = 'pending' OR lease_expires_at < now())
RETURNING {RUN_COLUMNS}
"""
_LOCK_OWNED = f"""
SELECT {RUN_COLUMNS} FROM eval_runs
WHERE id = $1 AND claimed_by = $2 AND attempt = $3 AND status = 'running'
FOR NO KEY UPDATE
"""
_PROGRESS = """
UPDATE eval_runs
SET active_ms = greatest(active_ms, $4), lease_expires_at = now() + make_interval(secs => $5),
    updated_at = now()
WHERE id = $1 AND claimed_by = $2 AND attempt = $3 AND status = 'running'
"""
_FINISH = f"""
UPDATE eval_runs
SET status = $4, termination_reason = $5, error = $6, error_code = $7, active_ms = greatest(active_ms, $8),
    ended_at = now(), duration_ms = greatest(0, (extract(epoch FROM now() - started_at) * 1000)::int),
    updated_at = now()
WHERE id = $1 AND claimed_by = $2 AND attempt = $3 AND status = 'running'
RETURNING {RUN_COLUMNS}
"""
_EXTEND = """
UPDATE eval_runs AS r
SET lease_expires_at = now() + make_interval(secs => $4)
FROM unnest($2::uuid[], $3::int[]) AS held (id, attempt)
WHERE r.id = held.id AND r.attempt = held.attempt AND r.claimed_by = $1 AND r.status = 'running'
RETURNING r.id
"""
_HAND_BACK = """
UPDATE eval_runs
SET lease_expires_at = now(), handed_back = handed_back + 1, dispatched_at = now(), updated_at = now()
WHERE claimed_by = $1 AND status = 'running' AND queue_status = 'claimed'
RETURNING id, company_id
"""


async def claim_run(conn: Connection, run_id: UUID, executor: str, ttl_s: float) -> Run | None:
    """Take a released run that is pending or whose lease expired; None if it is not claimable."""
    record = await conn.fetchrow(_CLAIM, run_id, executor, ttl_s)
    return None if record is None else run_from_record(record)


async def lock_owned_run(conn: Connection, lease: Lease) -> Run | None:
    """The run locked for this transaction, if `lease` still holds it (else None: lease lost)."""
    record = await conn.fetchrow(_LOCK_OWNED, lease.run_id, lease.executor, lease.attempt)
    return None if record is None else run_from_record(record)


async def record_progress(conn: Connection, lease: Lease, active_ms: int, ttl_s: float) -> bool:
    """Store the time executors have owned the run and renew the lease; False if it was lost."""
    status = await conn.execute(_PROGRESS, lease.run_id, lease.executor, lease.attempt, active_ms, ttl_s)
    return status.endswith(" 1")


async def finish_run(conn: Connection, lease: Lease, ending: Ending, active_ms: int) -> Run | None:
    """End the conversation (status terminal, reason, ended_at, duration); None if the lease was lost."""
    record = await conn.fetchrow(
        _FINISH,
        lease.run_id,
        lease.executor,
        lease.attempt,
        ending.status,
        ending.reason,
        ending.error,
        ending.error_code,
        active_ms,
    )
    return None if record is None else run_from_record(record)


async def extend_leases(conn: Connection, executor: str, leases: Sequence[Lease], ttl_s: float) -> set[UUID]:
    """Renew every lease `executor` holds in one statement; returns the runs it still holds."""
    if not leases:
        return set()
    ids = [lease.run_id for lease in leases]
    attempts = [lease.attempt for lease in leases]
    return {r["id"] for r in await conn.fetch(_EXTEND, executor, ids, attempts, ttl_s)}


async def hand_back(conn: Connection, executor: str) -> list[tuple[UUID, UUID]]:
    """Give up every run `executor` holds (shutting down): leases expire now, and the hand-back
    is not counted against the attempt cap. Returns (run id, company id) to re-dispatch."""
    return [(r["id"], r["company_id"]) for r in await conn.fetch(_HAND_BACK, executor)]
