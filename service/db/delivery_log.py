"""An endpoint's delivery log (`webhook_deliveries`, `webhook_attempts`) as users read it, and
replays: one delivery with its attempts, a filtered page, one delivery sent again, and every
failed delivery of a window recovered."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from schemas.webhooks import DeliveryStatus
from service.core.errors import NotFound
from service.db.deliveries import COLUMNS, DeliveryRow, delivery_from_record
from service.db.postgres import Connection
from service.db.tables import fetch_page


@dataclass(frozen=True)
class AttemptRow:
    number: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    response_ms: int
    response: str | None


ATTEMPT_COLUMNS = ", ".join(f.name for f in fields(AttemptRow))

_SELECT = f"SELECT {COLUMNS} FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2 AND company_id = $3"
_ATTEMPTS = f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id = $1 ORDER BY number"
_LIST_WHERE = "endpoint_id = $1 AND company_id = $2 AND ($3::text IS NULL OR status = $3)"
_LIST = f"""
SELECT {COLUMNS} FROM webhook_deliveries WHERE {_LIST_WHERE}
ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5
"""
_COUNT = f"SELECT count(*) FROM webhook_deliveries WHERE {_LIST_WHERE}"
_REQUEUE_ONE = f"""
UPDATE webhook_deliveries
SET status = 'pending', next_attempt_at = $4, schedule_base = attempt_count, updated_at = now()
WHERE id = $1 AND endpoint_id = $2 AND company_id = $3
RETURNING {COLUMNS}
"""
_RECOVER = """
UPDATE webhook_deliveries
SET status = 'pending', next_attempt_at = $5, schedule_base = attempt_count, updated_at = now()
WHERE endpoint_id = $1 AND company_id = $2 AND status IN ('failed', 'exhausted')
  AND created_at >= $3 AND ($4::timestamptz IS NULL OR created_at < $4)
"""


async def get_delivery(
    conn: Connection, company_id: UUID, endpoint_id: UUID, delivery_id: UUID
) -> tuple[DeliveryRow, list[AttemptRow]]:
    """The delivery with its attempts, or NotFound."""
    record = await conn.fetchrow(_SELECT, delivery_id, endpoint_id, company_id)
    if record is None:
        raise NotFound(f"Delivery {delivery_id} not found")
    attempts = [AttemptRow(**dict(r)) for r in await conn.fetch(_ATTEMPTS, delivery_id)]
    return delivery_from_record(record), attempts


async def list_deliveries(
    conn: Connection,
    company_id: UUID,
    endpoint_id: UUID,
    *,
    status: DeliveryStatus | None,
    limit: int,
    offset: int,
) -> tuple[list[DeliveryRow], int]:
    """An endpoint's deliveries, newest first, and how many match."""
    rows, total = await fetch_page(
        conn, _LIST, _COUNT, [endpoint_id, company_id, status], limit=limit, offset=offset
    )
    return [delivery_from_record(r) for r in rows], total


async def requeue_delivery(
    conn: Connection, company_id: UUID, endpoint_id: UUID, delivery_id: UUID, due_at: datetime
) -> DeliveryRow:
    """Send one delivery again (whatever its status), starting the schedule afresh."""
    record = await conn.fetchrow(_REQUEUE_ONE, delivery_id, endpoint_id, company_id, due_at)
    if record is None:
        raise NotFound(f"Delivery {delivery_id} not found")
    return delivery_from_record(record)


async def recover_deliveries(
    conn: Connection,
    company_id: UUID,
    endpoint_id: UUID,
    *,
    since: datetime,
    until: datetime | None,
    due_at: datetime,
) -> int:
    """Queue again every failed or exhausted delivery created in [since, until); how many."""
    status = await conn.execute(_RECOVER, endpoint_id, company_id, since, until, due_at)
    return int(status.split()[-1])
