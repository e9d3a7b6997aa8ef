"""Kafka event payloads: one discriminated union on `type` (DESIGN.md §5, §11).

Every event is one outbox row and one Kafka record whose value is the JSON body
`{"id", "type", "time", "company_id", "run_id", "sequence", "data"}` and whose headers carry the
CloudEvents 1.0 binary-mode attributes. Run events are keyed by run id and carry a per-run
`sequence` that equals commit order; other events are keyed by their entity id.

Besides the lifecycle events of §11, the run-requests topic carries one command,
`agent_eval.run.requested`: "execute this released run". It is not a lifecycle event (no
sequence, never sent to webhooks or SSE), but it travels the same outbox and envelope.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from schemas.api import RunSummary, SuiteRunSummary, Turn

EVENT_SOURCE = "/agent-eval"
TYPE_PREFIX = "agent_eval."


class Topic(StrEnum):
    """Logical topic names; the deployed name is `AGENT_EVAL_TOPIC_PREFIX` + this."""

    RUN_REQUESTS = "agent-eval.run-requests.v1"
    RUN_EVENTS = "agent-eval.run-events.v1"
    OPS_EVENTS = "agent-eval.ops-events.v1"


DLQ_SUFFIX = ".dlq"


class EventType(StrEnum):
    RUN_QUEUED = "agent_eval.run.queued"
    RUN_STARTED = "agent_eval.run.started"
    RUN_TURN = "agent_eval.run.turn"
    RUN_CANCEL_REQUESTED = "agent_eval.run.cancel_requested"
    RUN_COMPLETED = "agent_eval.run.completed"
    RUN_FAILED = "agent_eval.run.failed"
    RUN_CANCELLED = "agent_eval.run.cancelled"
    RUN_SCORED = "agent_eval.run.scored"
    RUN_BILLED = "agent_eval.run.billed"
    RUN_DONE = "agent_eval.run.done"
    SUITE_RUN_DONE = "agent_eval.suite_run.done"
    WEBHOOK_ENDPOINT_DISABLED = "agent_eval.webhook_endpoint.disabled"
    RUN_REQUESTED = "agent_eval.run.requested"


RUN_SUMMARY_EVENTS: frozenset[EventType] = frozenset(
    {
        EventType.RUN_QUEUED,
        EventType.RUN_STARTED,
        EventType.RUN_CANCEL_REQUESTED,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.RUN_CANCELLED,
        EventType.RUN_SCORED,
        EventType.RUN_BILLED,
        EventType.RUN_DONE,
    }
)
RUN_EVENTS: frozenset[EventType] = RUN_SUMMARY_EVENTS | {EventType.RUN_TURN}


def topic_of(event_type: EventType) -> Topic:
    """Which topic an event type travels on."""
    if event_type is EventType.RUN_REQUESTED:
        return Topic.RUN_REQUESTS
    if event_type is EventType.WEBHOOK_ENDPOINT_DISABLED:
        return Topic.OPS_EVENTS
    return Topic.RUN_EVENTS


def sse_name(event_type: str) -> str:
    """The SSE `event:` field: the type without its `agent_eval.` prefix."""
    return event_type.removeprefix(TYPE_PREFIX)


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID
    time: AwareDatetime
    company_id: UUID
    run_id: UUID | None
    sequence: int | None = Field(ge=1)


class _RunEvent(_Envelope):
    run_id: UUID
    sequence: int = Field(ge=1)
    data: RunSummary


class RunQueued(_RunEvent):
    """A run was created (status queued, queue_status pending)."""

    type: Literal[EventType.RUN_QUEUED]


class RunStarted(_RunEvent):
    """An executor claimed the run (status running, queue_status claimed)."""

    type: Literal[EventType.RUN_STARTED]


class RunTurnRecorded(_Envelope):
    """A transcript row was persisted; `data` is the turn as `GET …/turns` returns it."""

    type: Literal[EventType.RUN_TURN]
    run_id: UUID
    sequence: int = Field(ge=1)
    data: Turn


class RunCancelRequested(_RunEvent):
    """A cancel was requested on a running run; the executor honours it at the next turn boundary."""

    type: Literal[EventType.RUN_CANCEL_REQUESTED]


class RunCompleted(_RunEvent):
    """The conversation ended normally; the run waits to be scored, unless its summary already
    says `done` (no judge was needed: the executor scored and billed it at once)."""

    type: Literal[EventType.RUN_COMPLETED]


class RunFailed(_RunEvent):
    """The conversation ended in error; billed, not scored."""

    type: Literal[EventType.RUN_FAILED]


class RunCancelled(_RunEvent):
    """The run was cancelled; billed for what it used, not scored."""

    type: Literal[EventType.RUN_CANCELLED]


class RunScored(_RunEvent):
    """Assertions were evaluated; score and pass/fail are on the run."""

    type: Literal[EventType.RUN_SCORED]


class RunBilled(_RunEvent):
    """The run's cost was debited (or found already debited)."""

    type: Literal[EventType.RUN_BILLED]


class RunDone(_RunEvent):
    """The run is final: queue_status done; score, evaluation and costs no longer change."""

    type: Literal[EventType.RUN_DONE]


class SuiteRunDone(_Envelope):
    """Every run of a suite execution is done; keyed by the suite run id."""

    type: Literal[EventType.SUITE_RUN_DONE]
    run_id: None = None
    sequence: None = None
    data: SuiteRunSummary


class EndpointDisabled(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint_id: UUID
    url: str
    reason: str
    disabled_at: AwareDatetime


class WebhookEndpointDisabled(_Envelope):
    """A webhook endpoint was disabled after sustained delivery failure; keyed by endpoint id."""

    type: Literal[EventType.WEBHOOK_ENDPOINT_DISABLED]
    run_id: None = None
    sequence: None = None
    data: EndpointDisabled


class RunRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: UUID


class RunRequested(_Envelope):
    """Command on the run-requests topic: execute (or resume) this released run."""

    type: Literal[EventType.RUN_REQUESTED]
    run_id: UUID
    sequence: None = None
    data: RunRequest


Event = Annotated[
    RunQueued
    | RunStarted
    | RunTurnRecorded
    | RunCancelRequested
    | RunCompleted
    | RunFailed
    | RunCancelled
    | RunScored
    | RunBilled
    | RunDone
    | SuiteRunDone
    | WebhookEndpointDisabled
    | RunRequested,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def decode_event(body: bytes | str) -> Event:
    """Parse and validate one event body; raises pydantic.ValidationError when it is not one."""
    return EVENT_ADAPTER.validate_json(body)


def encode_event(event: Event) -> bytes:
    return EVENT_ADAPTER.dump_json(event)
