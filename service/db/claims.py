"""The executor's writes on a run (DESIGN.md §3 Claim and lease): the claim, and every later
write fenced by `claimed_by` and `attempt`, so an executor that lost its lease writes nothing.

A `Lease` names who holds a run and under which attempt. Every fenced statement matches zero
rows once another executor has re-claimed the run (or the run ended), and the caller then drops
the run without writing. Whether that is a loss is the `Tenure` of the lease: a run that ended
under it (its holder's own ending, even one whose commit the holder never saw) was not lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from service.db import states
from service.db.postgres import Connection
from service.db.runs import RunRow
from service.db.transitions import transition, transition_sql
from service.domain.lifecycle import TRANSITIONS, Ending, Step, end_event


@dataclass(frozen=True)
class Lease:
    run_id: UUID
    executor: str
    attempt: int


class Tenure(StrEnum):
    """What became of a lease, read from the run row."""

    HELD = "held"  # the run is running under it
    ENDED = "ended"  # the run ended under it: its holder ended it, nothing was lost
    LOST = "lost"  # another executor re-claimed the run, or the expired-lease sweep ended it


# Under the lease's own `claimed_by` and `attempt` (which never come back once changed), a
# terminal run was ended by its holder, unless the sweep failed it `EXECUTOR_LOST`
# (`service.db.dispatch.end_lost_run`, which keeps both).
_TENURE = f"""CASE WHEN r.status = {states.RUNNING} THEN '{Tenure.HELD}'
            WHEN r.error_code = 'EXECUTOR_LOST' THEN '{Tenure.LOST}'
            ELSE '{Tenure.ENDED}' END"""

# The claim of DESIGN.md §3 with `run.started`, and the attempt cap: a run whose executors
# kept vanishing is not claimed again (the expired-lease sweep ends it `EXECUTOR_LOST`).
_CLAIM = transition_sql(
    f"status = {states.RUNNING}, queue_status = {states.CLAIMED}, claimed_by = $2, attempt = attempt + 1,"
    " lease_expires_at = now() + make_interval(secs => $3), started_at = coalesce(started_at, now()),"
    " updated_at = now()",
    f"released_at IS NOT NULL AND status IN {states.UNFINISHED}"
    f" AND (queue_status = {states.PENDING} OR lease_expires_at < now()) AND attempt - handed_back < $4",
    params=4,
)
# The end of a conversation ($4..$8: `ending_args`), under the lease's fence ($2, $3).
FINISH_SET = (
    "status = $4, termination_reason = $5, error = $6, error_code = $7, active_ms = greatest(active_ms, $8),"
    " ended_at = now(), duration_ms = greatest(0, (extract(epoch FROM now() - started_at) * 1000)::int)"
)
FENCED_RUNNING = f"claimed_by = $2 AND attempt = $3 AND status = {states.RUNNING}"
_FINISH = transition_sql(f"{FINISH_SET}, updated_at = now()", FENCED_RUNNING, params=8)
# Every row still under the lease is updated (only a running one gets a new expiry), so a row
# whose ending commits while this statement waits for its lock is re-read after that commit
# (READ COMMITTED re-evaluates an UPDATE on the latest row version) and reported as it is then.
# The rows are locked in id order, as the executor's batched rounds lock them (no deadlock).
_EXTEND = f"""
WITH held AS (
    SELECT * FROM unnest($2::uuid[], $3::int[]) AS held (id, attempt)
), locked AS MATERIALIZED (
    SELECT r.id FROM eval_runs AS r JOIN held ON r.id = held.id AND r.attempt = held.attempt
    WHERE r.claimed_by = $1 ORDER BY r.id FOR NO KEY UPDATE OF r
)
UPDATE eval_runs AS r
SET lease_expires_at = CASE WHEN r.status = {states.RUNNING} THEN now() + make_interval(secs => $4)
                            ELSE r.lease_expires_at END
FROM held, locked
WHERE r.id = held.id AND locked.id = r.id AND r.attempt = held.attempt AND r.claimed_by = $1
RETURNING r.id, {_TENURE} AS tenure
"""
_CHECK = f"""
SELECT {_TENURE} AS tenure FROM eval_runs AS r WHERE r.id = $1 AND r.claimed_by = $2 AND r.attempt = $3
"""
_HAND_BACK = f"""
UPDATE eval_runs
SET lease_expires_at = now(), handed_back = handed_back + 1, dispatched_at = now(), updated_at = now()
WHERE claimed_by = $1 AND status = {states.RUNNING} AND queue_status = {states.CLAIMED}
RETURNING id, company_id
"""


async def claim_run(
    conn: Connection, run_id: UUID, executor: str, ttl_s: float, max_attempts: int
) -> RunRow | None:
    """Take a released run that is pending or whose lease expired, announcing `run.started`;
    None if it is not claimable (or its attempts are used up)."""
    return await transition(
        conn, _CLAIM, run_id, [executor, ttl_s, max_attempts], TRANSITIONS[Step.CLAIMED].events
    )


async def finish_run(conn: Connection, lease: Lease, ending: Ending, active_ms: int) -> RunRow | None:
    """End the conversation (status terminal, reason, ended_at, duration) and announce it;
    None if the lease was lost."""
    args = ending_args(lease, ending, active_ms)
    return await transition(conn, _FINISH, lease.run_id, args, [end_event(ending.status)])


def ending_args(lease: Lease, ending: Ending, active_ms: int) -> list[object]:
    """Parameters $2..$8 of a statement built on `FENCED_RUNNING` and `FINISH_SET`."""
    return [
        lease.executor,
        lease.attempt,
        ending.status,
        ending.reason,
        ending.error,
        ending.error_code,
        active_ms,
    ]


async def extend_leases(
    conn: Connection, executor: str, leases: Sequence[Lease], ttl_s: float
) -> dict[UUID, Tenure]:
    """Renew, by `ttl_s` seconds from now, every lease `executor` holds on a running run, in one
    statement; returns the tenure of each lease (a run no longer under it: `LOST`)."""
    if not leases:
        return {}
    ids = [lease.run_id for lease in leases]
    attempts = [lease.attempt for lease in leases]
    under = {r["id"]: Tenure(r["tenure"]) for r in await conn.fetch(_EXTEND, executor, ids, attempts, ttl_s)}
    return {run_id: under.get(run_id, Tenure.LOST) for run_id in ids}


async def check_lease(conn: Connection, lease: Lease) -> Tenure:
    """The lease's tenure now, for a holder whose fenced write matched no row (run it as a
    statement of its own, after that write: it then sees the change that made the fence fail)."""
    tenure = await conn.fetchval(_CHECK, lease.run_id, lease.executor, lease.attempt)
    return Tenure.LOST if tenure is None else Tenure(tenure)


async def hand_back(conn: Connection, executor: str) -> list[tuple[UUID, UUID]]:
    """Give up every run `executor` holds (shutting down): leases expire now, and the hand-back
    is not counted against the attempt cap. Returns (run id, company id) to re-dispatch."""
    return [(r["id"], r["company_id"]) for r in await conn.fetch(_HAND_BACK, executor)]
