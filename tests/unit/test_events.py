"""Event payloads: one discriminated union on `type`, strict envelopes, and the topic of each type."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from pydantic import BaseModel, ValidationError

from schemas.api import RunSummary, SuiteRunSummary, Turn
from schemas.events import (
    EVENT_ADAPTER,
    RUN_EVENTS,
    EndpointDisabled,
    Event,
    EventType,
    RunDone,
    RunQueued,
    RunRequest,
    RunRequested,
    RunTurnRecorded,
    SuiteRunDone,
    Topic,
    WebhookEndpointDisabled,
    decode_event,
    encode_event,
    sse_name,
    topic_of,
)

COMPANY_ID = UUID("0190b6a0-0000-7000-8000-000000000001")
RUN_ID = UUID("0190b6a0-0000-7000-8000-000000000002")
SUITE_ID = UUID("0190b6a0-0000-7000-8000-000000000003")
SUITE_RUN_ID = UUID("0190b6a0-0000-7000-8000-000000000004")
ENDPOINT_ID = UUID("0190b6a0-0000-7000-8000-000000000005")
NOW = datetime(2025, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)


def _run_summary() -> RunSummary:
    return RunSummary(
        id=RUN_ID,
        case_id=None,
        suite_id=SUITE_ID,
        suite_run_id=SUITE_RUN_ID,
        status="completed",
        queue_status="claimed",
        termination_reason="agent_ended",
        score=0.75,
        pass_fail=True,
        total_cost_cents=12,
        error_code=None,
        labels={"team": "qa"},
    )


def _data_for(event_type: EventType) -> BaseModel:
    if event_type is EventType.RUN_TURN:
        return Turn(
            id=UUID(int=9),
            run_id=RUN_ID,
            turn_number=1,
            created_at=NOW,
            role="agent",
            text="Hello, how can I help?",
        )
    if event_type is EventType.SUITE_RUN_DONE:
        return SuiteRunSummary(
            suite_run_id=SUITE_RUN_ID,
            suite_id=SUITE_ID,
            total_runs=3,
            completed=3,
            in_flight=0,
            cancelled=0,
            passed=2,
            failed=1,
            errored=0,
            done=True,
            inconclusive=0,
            total_cost_cents=40,
            started_at=NOW,
            ended_at=NOW + timedelta(minutes=2),
            score_avg=0.66,
            pass_rate=0.5,
        )
    if event_type is EventType.WEBHOOK_ENDPOINT_DISABLED:
        return EndpointDisabled(
            endpoint_id=ENDPOINT_ID, url="https://hooks.example/x", reason="410", disabled_at=NOW
        )
    if event_type is EventType.RUN_REQUESTED:
        return RunRequest(run_id=RUN_ID)
    return _run_summary()


def _event(event_type: EventType) -> Event:
    """A valid event of any type, built the way the outbox builds them."""
    is_run_event = event_type in RUN_EVENTS
    return EVENT_ADAPTER.validate_python(
        {
            "id": UUID(int=1),
            "type": event_type,
            "time": NOW,
            "company_id": COMPANY_ID,
            "run_id": RUN_ID if is_run_event or event_type is EventType.RUN_REQUESTED else None,
            "sequence": 7 if is_run_event else None,
            "data": _data_for(event_type),
        }
    )


def _wire(event_type: EventType) -> dict[str, object]:
    """The JSON body of an event, as a dict to tamper with."""
    body: dict[str, object] = json.loads(encode_event(_event(event_type)))
    return body


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_every_event_type_survives_an_encode_decode_round_trip(event_type: EventType) -> None:
    event = _event(event_type)

    decoded = decode_event(encode_event(event))

    assert decoded == event
    assert type(decoded) is type(event)
    assert decoded.type == event_type


def test_decoding_accepts_text_as_well_as_bytes() -> None:
    event = _event(EventType.RUN_DONE)

    assert decode_event(encode_event(event).decode()) == event


@pytest.mark.parametrize(
    ("event_type", "cls"),
    [
        (EventType.RUN_QUEUED, RunQueued),
        (EventType.RUN_DONE, RunDone),
        (EventType.RUN_TURN, RunTurnRecorded),
        (EventType.SUITE_RUN_DONE, SuiteRunDone),
        (EventType.WEBHOOK_ENDPOINT_DISABLED, WebhookEndpointDisabled),
        (EventType.RUN_REQUESTED, RunRequested),
    ],
)
def test_the_type_field_picks_the_event_class(event_type: EventType, cls: type[BaseModel]) -> None:
    assert isinstance(decode_event(json.dumps(_wire(event_type))), cls)


def test_the_wire_body_has_exactly_the_envelope_fields() -> None:
    assert set(_wire(EventType.RUN_STARTED)) == {
        "id",
        "type",
        "time",
        "company_id",
        "run_id",
        "sequence",
        "data",
    }


def test_a_decoded_run_event_carries_its_data() -> None:
    event = decode_event(json.dumps(_wire(EventType.RUN_COMPLETED)))

    assert isinstance(event.data, RunSummary)
    assert event.data == _run_summary()
    assert event.sequence == 7
    assert event.time == NOW


def test_an_unknown_type_is_refused() -> None:
    body = {**_wire(EventType.RUN_DONE), "type": "agent_eval.run.exploded"}

    with pytest.raises(ValidationError):
        decode_event(json.dumps(body))


def test_a_body_without_a_type_is_refused() -> None:
    body = _wire(EventType.RUN_DONE)
    del body["type"]

    with pytest.raises(ValidationError):
        decode_event(json.dumps(body))


@pytest.mark.parametrize("field", ["id", "time", "company_id", "run_id", "sequence", "data"])
def test_a_run_event_missing_a_field_is_refused(field: str) -> None:
    body = _wire(EventType.RUN_DONE)
    del body[field]

    with pytest.raises(ValidationError):
        decode_event(json.dumps(body))


def test_an_extra_envelope_field_is_refused() -> None:
    body = {**_wire(EventType.RUN_DONE), "priority": "high"}

    with pytest.raises(ValidationError, match="priority"):
        decode_event(json.dumps(body))


def test_a_naive_time_is_refused() -> None:
    body = {**_wire(EventType.RUN_DONE), "time": "2025-03-04T05:06:07"}

    with pytest.raises(ValidationError, match="timezone"):
        decode_event(json.dumps(body))


def test_a_naive_datetime_is_refused_when_built_in_python() -> None:
    with pytest.raises(ValidationError):
        EVENT_ADAPTER.validate_python(
            {
                "id": UUID(int=1),
                "type": EventType.RUN_REQUESTED,
                "time": datetime(2025, 1, 1),  # noqa: DTZ001 -- the naive datetime is the point of the test
                "company_id": COMPANY_ID,
                "run_id": RUN_ID,
                "sequence": None,
                "data": RunRequest(run_id=RUN_ID),
            }
        )


def test_a_time_with_an_offset_is_kept_as_the_same_instant() -> None:
    body = {**_wire(EventType.RUN_DONE), "time": "2025-03-04T07:06:07.89+02:00"}

    event = decode_event(json.dumps(body))

    assert event.time == NOW
    assert event.time.utcoffset() == timezone(timedelta(hours=2)).utcoffset(None)


@pytest.mark.parametrize("sequence", [0, -1, None])
def test_a_run_event_needs_a_positive_sequence(sequence: int | None) -> None:
    body = {**_wire(EventType.RUN_DONE), "sequence": sequence}

    with pytest.raises(ValidationError):
        decode_event(json.dumps(body))


def test_a_run_request_carries_no_sequence() -> None:
    body = {**_wire(EventType.RUN_REQUESTED), "sequence": 1}

    with pytest.raises(ValidationError):
        decode_event(json.dumps(body))


def test_an_entity_event_carries_no_run_id() -> None:
    body = {**_wire(EventType.SUITE_RUN_DONE), "run_id": str(RUN_ID)}

    with pytest.raises(ValidationError):
        decode_event(json.dumps(body))


def test_data_of_the_wrong_shape_is_refused() -> None:
    body = {**_wire(EventType.RUN_REQUESTED), "data": _wire(EventType.RUN_DONE)["data"]}

    with pytest.raises(ValidationError):
        decode_event(json.dumps(body))


def test_events_are_immutable() -> None:
    event = _event(EventType.RUN_DONE)

    with pytest.raises(ValidationError):
        event.sequence = 8  # type: ignore[misc]  # assigning to a frozen model is what is being tested


def test_run_requests_travel_on_the_run_requests_topic() -> None:
    assert topic_of(EventType.RUN_REQUESTED) is Topic.RUN_REQUESTS


def test_endpoint_disabled_travels_on_the_ops_topic() -> None:
    assert topic_of(EventType.WEBHOOK_ENDPOINT_DISABLED) is Topic.OPS_EVENTS


@pytest.mark.parametrize(
    "event_type",
    [t for t in EventType if t not in {EventType.RUN_REQUESTED, EventType.WEBHOOK_ENDPOINT_DISABLED}],
    ids=str,
)
def test_every_other_event_travels_on_the_run_events_topic(event_type: EventType) -> None:
    assert topic_of(event_type) is Topic.RUN_EVENTS


def test_the_topic_of_a_decoded_event_type_is_found() -> None:
    event = decode_event(json.dumps(_wire(EventType.RUN_REQUESTED)))

    assert topic_of(EventType(event.type)) is Topic.RUN_REQUESTS


@pytest.mark.parametrize(
    ("event_type", "name"),
    [
        (EventType.RUN_DONE, "run.done"),
        (EventType.RUN_TURN, "run.turn"),
        (EventType.SUITE_RUN_DONE, "suite_run.done"),
        (EventType.WEBHOOK_ENDPOINT_DISABLED, "webhook_endpoint.disabled"),
    ],
)
def test_the_sse_name_is_the_type_without_its_prefix(event_type: EventType, name: str) -> None:
    assert sse_name(event_type) == name


def test_the_sse_name_strips_the_prefix_only_at_the_start() -> None:
    assert sse_name("custom.agent_eval.x") == "custom.agent_eval.x"
    assert sse_name("agent_eval.agent_eval.x") == "agent_eval.x"
