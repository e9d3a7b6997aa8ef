"""Dispatch (DESIGN.md §3): which runs are released to executors, and the sweeps that keep
released runs moving.

A released run holds a slot until its conversation is over. A company has at most `cap`
released, unfinished runs; a suite run at most its `parallelism`. Held runs are released
oldest first (suite runs in `position` order) by `release_held`, called after every commit that
creates held runs or ends a released one (`service.runs.endings.fill_slots`) and by the maintenance
job every few seconds. Decisions for one company are serialised by an advisory lock taken inside
the `release_held_runs` function, so two releases never both fill the last slot. A release
commits without waiting for its WAL flush (migration 0014 says why that is safe), so the lock is
held for the statement's work only, not for a disk flush: `release_held` must run in a
transaction of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from uuid import UUID

from service.db import outbox, states
from service.db.postgres import Connection
from service.db.runs import DONE_CHANNEL, RUN_COLUMNS, RunRow, run_from_record
from service.domain.redispatch import LastRequest

# The release and the run requests of the released runs in one statement: a release that
# commits without its requests (a crash, a cancelled task between two statements) would leave
# runs no executor hears of until the stale-pending sweep.
_RELEASE_HELD = f"""
WITH released AS (
    SELECT run_id FROM release_held_runs($1, $2) AS released (run_id)
), requested AS ({outbox.run_requests_sql(3, runs="released", company="$1")})
SELECT run_id FROM released
"""
_HAS_HELD = f"""
SELECT EXISTS (
    SELECT 1 FROM eval_runs WHERE company_id = $1 AND released_at IS NULL AND status = {states.QUEUED})
"""
_COMPANIES_WITH_HELD = f"""
SELECT DISTINCT company_id FROM eval_runs WHERE released_at IS NULL AND status = {states.QUEUED} LIMIT $1
"""
_EXPIRED = f"""queue_status = {states.CLAIMED} AND status IN {states.UNFINISHED} AND lease_expires_at < now()
  AND (attempt - handed_back >= $2 OR dispatched_at IS NULL OR dispatched_at < lease_expires_at
       OR dispatched_at < now() - make_interval(secs => $1))"""
_EXPIRED_LEASES = f"""
SELECT {RUN_COLUMNS} FROM eval_runs
WHERE {_EXPIRED}
ORDER BY lease_expires_at
LIMIT $3
FOR UPDATE SKIP LOCKED
"""
_HAS_EXPIRED_LEASES = f"SELECT EXISTS (SELECT 1 FROM eval_runs WHERE {_EXPIRED})"
_STALE = f"""queue_status = {states.PENDING} AND status = {states.QUEUED} AND released_at IS NOT NULL
  AND coalesce(dispatched_at, released_at) < now() - make_interval(secs => $1)"""
_STALE_PENDING = f"""
SELECT {RUN_COLUMNS} FROM eval_runs
WHERE {_STALE}
ORDER BY coalesce(dispatched_at, released_at)
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
_HAS_STALE_PENDING = f"SELECT EXISTS (SELECT 1 FROM eval_runs WHERE {_STALE})"
_MARK_DISPATCHED = "UPDATE eval_runs SET dispatched_at = now() WHERE id = ANY($1::uuid[])"
_LAST_REQUESTS = """
SELECT DISTINCT ON (o.run_id) o.run_id, o.created_at,
       NOT EXISTS (SELECT 1 FROM outbox_pending AS p WHERE p.id = o.id) AS sent,
       o.published_partition, o.published_offset
FROM outbox AS o WHERE o.run_id = ANY($1::uuid[]) AND o.type = 'agent_eval.run.requested'
ORDER BY o.run_id, o.id DESC
"""
_OLDEST_PENDING_AGE = f"""
SELECT coalesce(extract(epoch FROM now() - min(released_at)), 0)::float8 FROM eval_runs
WHERE queue_status = {states.PENDING} AND status = {states.QUEUED} AND released_at IS NOT NULL
"""
_END_LOST = f"""
UPDATE eval_runs
SET status = 'failed', termination_reason = 'error', error_code = 'EXECUTOR_LOST', error = $2,
    ended_at = now(), duration_ms = greatest(0, (extract(epoch FROM now() - started_at) * 1000)::int),
    updated_at = now()
WHERE id = $1 AND queue_status = {states.CLAIMED} AND status IN {states.UNFINISHED}
  AND lease_expires_at < now()
RETURNING {RUN_COLUMNS}
"""
_CANCEL_PENDING = f"""
WITH done AS (
    UPDATE eval_runs
    SET status = {states.CANCELLED}, termination_reason = 'cancelled', queue_status = {states.DONE},
        ended_at = now(), done_at = now(), cancel_requested_at = coalesce(cancel_requested_at, now()),
        updated_at = now()
    WHERE id = $1 AND queue_status = {states.PENDING} AND status = {states.QUEUED}
    RETURNING {RUN_COLUMNS}
)
SELECT {RUN_COLUMNS}, pg_notify('{DONE_CHANNEL}', id::text) AS notified FROM done
"""
_REQUEST_CANCEL = f"""
UPDATE eval_runs SET cancel_requested_at = now(), updated_at = now()
WHERE id = $1 AND status = {states.RUNNING} AND cancel_requested_at IS NULL
RETURNING {RUN_COLUMNS}
"""


@dataclass(frozen=True)
class Released:
    run_id: UUID
    company_id: UUID


async def release_held(conn: Connection, company_id: UUID, cap: int) -> list[UUID]:
    """Release what fits under the company's cap and its suite runs' parallelism, oldest first,
    and write a run request for each, in one statement; returns the released run ids. Call it
    outside a transaction: the release commits on its own, holding the company's lock only
    inside the server (`release_held_runs`)."""
    requests = outbox.run_request_parameters(company_id)
    return [r["run_id"] for r in await conn.fetch(_RELEASE_HELD, company_id, cap, *requests)]


async def has_held_runs(conn: Connection, company_id: UUID) -> bool:
    """Whether the company has runs waiting for a slot (committed ones; no lock taken)."""
    return bool(await conn.fetchval(_HAS_HELD, company_id))


async def companies_with_held_runs(conn: Connection, limit: int) -> list[UUID]:
    return [r["company_id"] for r in await conn.fetch(_COMPANIES_WITH_HELD, limit)]


async def claim_expired_leases(
    conn: Connection, redispatch_after_s: float, limit: int, max_attempts: int
) -> list[RunRow]:
    """Claimed runs whose lease expired: those out of attempts, and those not re-dispatched since
    (or not within `redispatch_after_s`); locked."""
    return [
        run_from_record(r) for r in await conn.fetch(_EXPIRED_LEASES, redispatch_after_s, max_attempts, limit)
    ]


async def has_expired_leases(conn: Connection, redispatch_after_s: float, max_attempts: int) -> bool:
    """Whether `claim_expired_leases` would find a run (no lock taken)."""
    return bool(await conn.fetchval(_HAS_EXPIRED_LEASES, redispatch_after_s, max_attempts))


async def claim_stale_pending(conn: Connection, older_than_s: float, limit: int) -> list[RunRow]:
    """Released runs no executor claimed within `older_than_s` of their last dispatch, the
    longest-waiting first; locked."""
    return [run_from_record(r) for r in await conn.fetch(_STALE_PENDING, older_than_s, limit)]


async def has_stale_pending(conn: Connection, older_than_s: float) -> bool:
    """Whether `claim_stale_pending` would find a run (no lock taken)."""
    return bool(await conn.fetchval(_HAS_STALE_PENDING, older_than_s))


async def redispatch(conn: Connection, runs: list[RunRow]) -> None:
    """Write a fresh run request for each run (an executor claims it or resumes it)."""
    await mark_dispatched(conn, [run.id for run in runs])
    for run in runs:
        await outbox.append_run_request(conn, run.id, run.company_id)


async def list_last_requests(conn: Connection, run_ids: Sequence[UUID]) -> dict[UUID, LastRequest]:
    """Each run's most recent run request (runs without one are absent): when it was written,
    and where the relay published it."""
    rows = await conn.fetch(_LAST_REQUESTS, list(run_ids))
    return {
        r["run_id"]: LastRequest(r["created_at"], r["sent"], r["published_partition"], r["published_offset"])
        for r in rows
    }


async def mark_dispatched(conn: Connection, run_ids: Collection[UUID]) -> None:
    """Count these runs as dispatched now: their request was seen on its way, so the sweeps look
    at them again only `older_than_s` later."""
    await conn.execute(_MARK_DISPATCHED, list(run_ids))


async def oldest_pending_age_s(conn: Connection) -> float:
    """Seconds since the oldest released, still pending run was released (0 when none waits)."""
    return float(await conn.fetchval(_OLDEST_PENDING_AGE))


async def end_lost_run(conn: Connection, run_id: UUID, error: str) -> RunRow | None:
    """Fail a run whose executors kept disappearing (`EXECUTOR_LOST`); None if it moved meanwhile."""
    record = await conn.fetchrow(_END_LOST, run_id, error)
    return None if record is None else run_from_record(record)


async def cancel_pending(conn: Connection, run_id: UUID) -> RunRow | None:
    """Cancel a run no executor has claimed: cancelled and done at once, cost 0, its waiters
    woken (on commit); None if it was claimed."""
    record = await conn.fetchrow(_CANCEL_PENDING, run_id)
    return None if record is None else run_from_record(record, extra=("notified",))


async def request_cancel(conn: Connection, run_id: UUID) -> RunRow | None:
    """Flag a running run for cancellation at its next turn boundary; None if already flagged."""
    record = await conn.fetchrow(_REQUEST_CANCEL, run_id)
    return None if record is None else run_from_record(record)
