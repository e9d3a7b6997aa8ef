"""An endpoint's delivery log and replays: list and read deliveries with their attempts, send
one again, recover every failed one since a time, and send a signed `agent_eval.ping`."""

from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID

from schemas.webhooks import DeliveryAttempt, WebhookDelivery, WebhookDeliveryDetail
from service.core.ids import new_id
from service.db import deliveries, delivery_log, webhooks
from service.db.postgres import Connection
from service.domain.webhooks import PING_EVENT_TYPE
from service.webhooks.payloads import ping_payload


async def queue_ping(conn: Connection, company_id: UUID, endpoint_id: UUID, now: datetime) -> WebhookDelivery:
    """A test delivery due now, whatever the endpoint subscribes to (a disabled one included:
    testing is how its owner finds out it works again)."""
    await webhooks.get_endpoint(conn, company_id, endpoint_id)
    event_id = new_id()
    new = deliveries.NewDelivery(
        id=new_id(),
        endpoint_id=endpoint_id,
        company_id=company_id,
        event_id=event_id,
        event_type=PING_EVENT_TYPE,
        run_id=None,
        sequence=None,
        payload=ping_payload(endpoint_id, now),
    )
    (delivery_id,) = await deliveries.insert_deliveries(conn, [new], now)
    row, _ = await delivery_log.get_delivery(conn, company_id, endpoint_id, delivery_id)
    return delivery_view(row)


async def queue_resend(
    conn: Connection, company_id: UUID, endpoint_id: UUID, delivery_id: UUID, now: datetime
) -> WebhookDelivery:
    """Send one delivery of the company's endpoint again (whatever its status), its schedule
    starting afresh at `now`; NotFound for another company's endpoint or delivery."""
    await webhooks.get_endpoint(conn, company_id, endpoint_id)
    row = await delivery_log.requeue_delivery(conn, company_id, endpoint_id, delivery_id, now)
    return delivery_view(row)


def delivery_view(row: deliveries.DeliveryRow) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        run_id=row.run_id,
        status=row.status,
        attempts=row.attempt_count,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        last_response_ms=row.last_response_ms,
        last_attempt_at=row.last_attempt_at,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        succeeded_at=row.succeeded_at,
        created_at=row.created_at,
    )


def delivery_detail(
    row: deliveries.DeliveryRow, attempts: list[delivery_log.AttemptRow]
) -> WebhookDeliveryDetail:
    return WebhookDeliveryDetail(
        **delivery_view(row).model_dump(),
        payload=json.loads(row.payload),
        attempt_log=[
            DeliveryAttempt(
                number=a.number,
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                error=a.error,
                response_ms=a.response_ms,
                response=a.response,
            )
            for a in attempts
        ],
    )
