"""The relay's Kafka record for an outbox row: CloudEvents 1.0 binary-mode headers, key and value."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from consumers.relay import outbox_record
from schemas.events import Topic
from service.db.publishing import OutboxRow

EVENT_ID = UUID("0190b6a0-0000-7000-8000-0000000000aa")
RUN_ID = UUID("0190b6a0-0000-7000-8000-0000000000bb")
CREATED_AT = datetime(2025, 3, 4, 5, 6, 7, 123_456, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PAYLOAD = '{"id": "x", "type": "agent_eval.run.done", "note": "caf\u00e9 \u2615"}'


def _row(*, sequence: int | None = 3, traceparent: str | None = None) -> OutboxRow:
    return OutboxRow(
        id=17,
        event_id=EVENT_ID,
        topic=Topic.RUN_EVENTS.value,
        key=str(RUN_ID),
        type="agent_eval.run.done",
        run_id=RUN_ID,
        sequence=sequence,
        payload=PAYLOAD,
        traceparent=traceparent,
        created_at=CREATED_AT,
    )


def _headers(row: OutboxRow) -> dict[str, str]:
    record = outbox_record(row, prefix="p.")
    names = [name for name, _ in record.headers]
    assert len(names) == len(set(names)), f"duplicate headers: {names}"
    return {name: value.decode() for name, value in record.headers}


def test_the_record_goes_to_the_prefixed_topic_keyed_by_the_row_key() -> None:
    record = outbox_record(_row(), prefix="staging.")

    assert record.topic == "staging.agent-eval.run-events.v1"
    assert record.key == str(RUN_ID).encode()


def test_the_value_is_the_payload_bytes_unchanged() -> None:
    assert outbox_record(_row(), prefix="").value == PAYLOAD.encode()


def test_the_cloudevents_attributes_are_binary_mode_headers() -> None:
    headers = _headers(_row())

    assert headers["ce_id"] == str(EVENT_ID)
    assert headers["ce_source"] == "/agent-eval"
    assert headers["ce_type"] == "agent_eval.run.done"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_subject"] == str(RUN_ID)
    assert headers["content-type"] == "application/json"


def test_the_time_header_is_iso_8601_in_utc() -> None:
    ce_time = _headers(_row())["ce_time"]

    assert ce_time.endswith("Z")
    assert datetime.fromisoformat(ce_time) == CREATED_AT


def test_the_sequence_header_is_sent_for_sequenced_events() -> None:
    assert _headers(_row(sequence=3))["ce_sequence"] == "3"


def test_no_sequence_header_is_sent_for_unsequenced_events() -> None:
    assert "ce_sequence" not in _headers(_row(sequence=None))


def test_the_traceparent_is_sent_as_an_attribute_and_as_the_w3c_header() -> None:
    headers = _headers(_row(traceparent=TRACEPARENT))

    assert headers["ce_traceparent"] == TRACEPARENT
    assert headers["traceparent"] == TRACEPARENT


@pytest.mark.parametrize("traceparent", [None, ""])
def test_no_trace_headers_are_sent_without_a_traceparent(traceparent: str | None) -> None:
    headers = _headers(_row(traceparent=traceparent))

    assert "ce_traceparent" not in headers
    assert "traceparent" not in headers
