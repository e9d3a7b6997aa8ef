"""Records exactly as the relay writes them (CloudEvents binary mode), for bus and consumer tests."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from consumers.relay import outbox_record
from schemas.events import EVENT_ADAPTER, Event, EventType, RunRequest
from service.bus.interface import OutgoingRecord
from service.core.ids import new_id
from service.db.publishing import OutboxRow


def run_request(run_id: UUID | None = None, company_id: UUID | None = None) -> Event:
    run_id = run_id or new_id()
    return EVENT_ADAPTER.validate_python(
        {
            "id": new_id(),
            "type": EventType.RUN_REQUESTED,
            "time": datetime.now(UTC),
            "company_id": company_id or new_id(),
            "run_id": run_id,
            "sequence": None,
            "data": RunRequest(run_id=run_id),
        }
    )


def record_for(event: Event, topic: str, *, key: str | None = None) -> OutgoingRecord:
    """The Kafka record for `event` on `topic` (full name), keyed by its run id unless told."""
    row = OutboxRow(
        id=0,
        event_id=event.id,
        topic=topic,
        key=key or str(event.run_id),
        type=event.type,
        run_id=event.run_id,
        sequence=event.sequence,
        payload=EVENT_ADAPTER.dump_json(event).decode(),
        traceparent=None,
        created_at=event.time,
    )
    return outbox_record(row, prefix="")


def raw_record(topic: str, value: bytes, *, ce_type: str | None, key: bytes = b"k") -> OutgoingRecord:
    headers = () if ce_type is None else (("ce_type", ce_type.encode()),)
    return OutgoingRecord(topic, key, value, headers)
