"""Webhook deliveries (`webhook_deliveries`, `webhook_attempts`): one durable row per (endpoint,
event), the schedule of its attempts, and the log of each attempt (DESIGN.md §8).

The table is the dead-letter queue. Due deliveries are claimed with `FOR UPDATE SKIP LOCKED`,
so notifier replicas share them; a claim pushes `next_attempt_at` a lease ahead, so an attempt
cut short by a crash is simply due again when the lease runs out (same `webhook-id`). Times
come from the caller's clock, so a test can run the whole schedule in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from schemas.webhooks import DeliveryStatus
from service.db.postgres import Connection, Record


@dataclass(frozen=True)
class DeliveryRow:
    id: UUID
    endpoint_id: UUID
    company_id: UUID
    event_id: UUID
    event_type: str
    run_id: UUID | None
    sequence: int | None
    payload: str
    status: DeliveryStatus
    attempt_count: int
    schedule_base: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_response_ms: int | None
    succeeded_at: datetime | None
    created_at: datetime

    @property
    def attempts_in_schedule(self) -> int:
        """Attempts made since the delivery was (re)queued."""
        return self.attempt_count - self.schedule_base


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for an attempt, with what sending it needs of its endpoint."""

    delivery: DeliveryRow
    url: str
    secret_sealed: str
    previous_secret_sealed: str | None
    previous_secret_expires_at: datetime | None
    endpoint_enabled: bool


@dataclass(frozen=True)
class AttemptEntry:
    """An attempt to record: which delivery, what happened, and whether it counts toward the
    endpoint's health (a test send does not)."""

    delivery_id: UUID
    attempt: Attempt
    counts_for_health: bool


@dataclass(frozen=True)
class Recorded:
    """An attempt as written: the delivery's new status and, when the attempt counts toward
    the endpoint's health, since when the endpoint has been failing (None: it is healthy)."""

    status: DeliveryStatus
    failing_since: datetime | None


@dataclass(frozen=True)
class NewDelivery:
    id: UUID
    endpoint_id: UUID
    company_id: UUID
    event_id: UUID
    event_type: str
    run_id: UUID | None
    sequence: int | None
    payload: str


@dataclass(frozen=True)
class Attempt:
    """What one attempt found, and what the delivery becomes."""

    attempted_at: datetime
    status_code: int | None
    error: str | None
    response_ms: int
    response: str | None
    status: DeliveryStatus
    next_attempt_at: datetime | None


COLUMNS = ", ".join(f.name for f in fields(DeliveryRow))
_D_COLUMNS = ", ".join(f"d.{f.name}" for f in fields(DeliveryRow))

_INSERT = """
INSERT INTO webhook_deliveries (id, endpoint_id, company_id, event_id, event_type, run_id, sequence, payload,
                                next_attempt_at)
SELECT d.id, d.endpoint_id, d.company_id, d.event_id, d.event_type, d.run_id, d.sequence, d.payload, $9
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::int[], $8::text[])
     AS d (id, endpoint_id, company_id, event_id, event_type, run_id, sequence, payload)
ON CONFLICT (endpoint_id, event_id) DO NOTHING
RETURNING id
"""
# Endpoints with due deliveries, oldest first, each taking at most its room (`$6` for endpoints
# not listed in `$4`/`$5`), so a slow endpoint's backlog never hides another endpoint's work.
_CLAIM = f"""
WITH due AS (
    SELECT endpoint_id, min(next_attempt_at) AS oldest FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= $1
    GROUP BY endpoint_id
), ready AS (
    SELECT due.endpoint_id, due.oldest, coalesce(cap.free, $6) AS free
    FROM due LEFT JOIN unnest($4::uuid[], $5::int[]) AS cap (endpoint_id, free) USING (endpoint_id)
    WHERE coalesce(cap.free, $6) > 0
    ORDER BY due.oldest
    LIMIT $3
), chosen AS (
    SELECT picked.id FROM ready CROSS JOIN LATERAL (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.endpoint_id = ready.endpoint_id AND d.status = 'pending' AND d.next_attempt_at <= $1
        ORDER BY d.next_attempt_at
        LIMIT ready.free
        FOR UPDATE SKIP LOCKED
    ) AS picked
    LIMIT $3
)
UPDATE webhook_deliveries d SET next_attempt_at = $1 + make_interval(secs => $2), updated_at = now()
FROM chosen, webhook_endpoints e
WHERE d.id = chosen.id AND e.id = d.endpoint_id
RETURNING {_D_COLUMNS}, e.url, e.secret_sealed, e.previous_secret_sealed, e.previous_secret_expires_at,
          e.is_enabled AND e.deleted_at IS NULL AS endpoint_enabled
"""
# Attempts as logged, their deliveries' new states and (for attempts that count toward an
# endpoint's health) the endpoints' failure clocks, in one statement for a batch of attempts. A
# success in the batch stops an endpoint's clock; failures only start it if it is not running.
_RECORD = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[], $4::text[], $5::int[], $6::text[],
                         $7::text[], $8::timestamptz[], $9::boolean[])
         AS a (delivery_id, attempted_at, status_code, error, response_ms, response, status, next_attempt_at,
               health)
), attempt AS (
    INSERT INTO webhook_attempts (delivery_id, number, attempted_at, status_code, error, response_ms,
                                  response)
    SELECT d.id, d.attempt_count + 1, a.attempted_at, a.status_code, a.error, a.response_ms, a.response
    FROM input a JOIN webhook_deliveries d ON d.id = a.delivery_id AND d.status = 'pending'
    RETURNING delivery_id
), delivery AS (
    UPDATE webhook_deliveries d
    SET attempt_count = attempt_count + 1, status = a.status, next_attempt_at = a.next_attempt_at,
        last_attempt_at = a.attempted_at, last_status_code = a.status_code, last_error = a.error,
        last_response_ms = a.response_ms,
        succeeded_at = CASE WHEN a.status = 'succeeded' THEN a.attempted_at ELSE succeeded_at END,
        updated_at = now()
    FROM input a JOIN attempt USING (delivery_id)
    WHERE d.id = a.delivery_id
    RETURNING d.id, d.endpoint_id, d.status, a.health, a.attempted_at
), outcome AS (
    SELECT endpoint_id, bool_or(status = 'succeeded') AS healthy, min(attempted_at) AS first_failure
    FROM delivery WHERE health GROUP BY endpoint_id
), clock AS (
    UPDATE webhook_endpoints e
    SET failing_since = CASE WHEN o.healthy THEN NULL ELSE coalesce(e.failing_since, o.first_failure) END,
        updated_at = now()
    FROM outcome o
    WHERE e.id = o.endpoint_id AND (NOT o.healthy OR e.failing_since IS NOT NULL)
    RETURNING e.id, e.failing_since
)
SELECT delivery.id, delivery.status,
       CASE WHEN delivery.status = 'succeeded' OR NOT delivery.health THEN NULL
            ELSE coalesce((SELECT c.failing_since FROM clock c WHERE c.id = delivery.endpoint_id),
                          (SELECT e.failing_since FROM webhook_endpoints e WHERE e.id = delivery.endpoint_id))
       END AS failing_since
FROM delivery
"""
_STOP_PENDING = """
UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = $2, updated_at = now()
WHERE endpoint_id = $1 AND status = 'pending'
"""
_PURGE = """
DELETE FROM webhook_deliveries WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE status <> 'pending' AND updated_at < $1
    LIMIT $2)
"""


def delivery_from_record(record: Record) -> DeliveryRow:
    return DeliveryRow(**{f.name: record[f.name] for f in fields(DeliveryRow)})


async def insert_deliveries(conn: Connection, new: Sequence[NewDelivery], due_at: datetime) -> list[UUID]:
    """Create the deliveries due at `due_at`; a (endpoint, event) pair that has one already keeps
    it (a redelivered event creates nothing). Returns the ids created."""
    if not new:
        return []
    columns = [
        [d.id for d in new],
        [d.endpoint_id for d in new],
        [d.company_id for d in new],
        [d.event_id for d in new],
        [d.event_type for d in new],
        [d.run_id for d in new],
        [d.sequence for d in new],
        [d.payload for d in new],
    ]
    return [r["id"] for r in await conn.fetch(_INSERT, *columns, due_at)]


async def claim_due(
    conn: Connection,
    now: datetime,
    *,
    lease_s: float,
    limit: int,
    per_endpoint: int,
    room: dict[UUID, int],
) -> list[Claimed]:
    """Claim up to `limit` due deliveries, oldest endpoints first, at most `per_endpoint` per
    endpoint (`room` gives the remaining room of endpoints with attempts in flight); each comes
    with its endpoint's URL and sealed secrets."""
    if limit <= 0:
        return []
    ids, free = list(room), [room[endpoint] for endpoint in room]
    rows = await conn.fetch(_CLAIM, now, lease_s, limit, ids, free, per_endpoint)
    return [
        Claimed(
            delivery=delivery_from_record(r),
            url=r["url"],
            secret_sealed=r["secret_sealed"],
            previous_secret_sealed=r["previous_secret_sealed"],
            previous_secret_expires_at=r["previous_secret_expires_at"],
            endpoint_enabled=r["endpoint_enabled"],
        )
        for r in rows
    ]


async def record_attempts(conn: Connection, entries: Sequence[AttemptEntry]) -> dict[UUID, Recorded]:
    """Log the attempts, move their deliveries on and keep their endpoints' failure clocks, in
    one statement; a delivery no longer pending (its endpoint was disabled or deleted
    meanwhile) is left out of the answer."""
    attempts = [e.attempt for e in entries]
    rows = await conn.fetch(
        _RECORD,
        [e.delivery_id for e in entries],
        [a.attempted_at for a in attempts],
        [a.status_code for a in attempts],
        [a.error for a in attempts],
        [a.response_ms for a in attempts],
        [a.response for a in attempts],
        [a.status for a in attempts],
        [a.next_attempt_at for a in attempts],
        [e.counts_for_health for e in entries],
    )
    return {r["id"]: Recorded(r["status"], r["failing_since"]) for r in rows}


async def stop_pending(conn: Connection, endpoint_id: UUID, reason: str) -> int:
    """Fail every pending delivery of an endpoint that stopped receiving (they can be recovered)."""
    status = await conn.execute(_STOP_PENDING, endpoint_id, reason)
    return int(status.split()[-1])


async def purge_finished(conn: Connection, before: datetime, batch: int) -> int:
    """Delete up to `batch` finished deliveries last touched before `before`; how many."""
    status = await conn.execute(_PURGE, before, batch)
    return int(status.split()[-1])
