"""Webhook endpoints and their delivery log (`/webhooks`, DESIGN.md §8, §11).

A delivery is one event sent to one endpoint: `POST <url>` with the JSON body
`{"type", "timestamp", "data"}` (plus `sequence` for run events) and the Standard Webhooks
headers `webhook-id` (the event id, the same on every retry), `webhook-timestamp` and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per valid secret).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from schemas.bodies import Body, Patch
from schemas.fields import JsonObject, ShortText, reject_null
from schemas.pages import ListQuery

# Every event type an endpoint may subscribe to (`agent_eval.run.requested` is a command, not news).
SubscribableEvent = Literal[
    "agent_eval.run.queued",
    "agent_eval.run.started",
    "agent_eval.run.turn",
    "agent_eval.run.cancel_requested",
    "agent_eval.run.completed",
    "agent_eval.run.failed",
    "agent_eval.run.cancelled",
    "agent_eval.run.scored",
    "agent_eval.run.billed",
    "agent_eval.run.done",
    "agent_eval.suite_run.done",
    "agent_eval.webhook_endpoint.disabled",
]
DEFAULT_EVENT_TYPES: list[SubscribableEvent] = ["agent_eval.run.done", "agent_eval.suite_run.done"]
DeliveryStatus = Literal["pending", "succeeded", "failed", "exhausted"]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048, strip_whitespace=True)]
EventTypes = Annotated[
    list[SubscribableEvent],
    Field(min_length=1, max_length=32, description="The event types sent to this endpoint."),
]


def _unique(types: list[SubscribableEvent] | None) -> list[SubscribableEvent] | None:
    return None if types is None else list(dict.fromkeys(types))


class WebhookEndpointCreate(Body):
    url: Url = Field(description="https:// URL that receives the POSTs (public addresses only).")
    event_types: EventTypes = Field(default_factory=lambda: list(DEFAULT_EVENT_TYPES))
    description: ShortText | None = None
    enabled: bool = True

    _unique_types = field_validator("event_types")(_unique)


class WebhookEndpointPatch(Patch):
    url: Url | SkipJsonSchema[None] = None
    event_types: EventTypes | SkipJsonSchema[None] = None
    description: ShortText | None = None
    enabled: bool | SkipJsonSchema[None] = Field(
        default=None, description="false stops deliveries; true re-enables (and forgets past failures)."
    )

    _not_null = field_validator("url", "event_types", "enabled")(reject_null)
    _unique_types = field_validator("event_types")(_unique)


class WebhookEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UUID
    company_id: UUID
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None = Field(description="First failure since the last success, if any.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries are also signed with the secret before the last rotation."
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpoint):
    """Only the answers to create and rotate carry the secret."""

    secret: str = Field(description="`whsec_` + base64 signing secret; shown only now.")


class SecretRotation(Body):
    grace_period_s: int | None = Field(
        default=None,
        ge=0,
        le=7 * 86_400,
        description="How long the old secret keeps signing too (default 24 h).",
    )


class DeliveryListQuery(ListQuery):
    status: DeliveryStatus | None = None


class WebhookDelivery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UUID
    endpoint_id: UUID
    event_id: UUID = Field(description="Sent as `webhook-id`; the same on every retry.")
    event_type: str
    run_id: UUID | None
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_response_ms: int | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending only).")
    succeeded_at: datetime | None
    created_at: datetime


class DeliveryAttempt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    response_ms: int
    response: str | None = Field(description="The first bytes of the receiver's answer.")


class WebhookDeliveryDetail(WebhookDelivery):
    payload: JsonObject = Field(description="The body sent, exactly as signed.")
    attempt_log: list[DeliveryAttempt]


class RecoverRequest(Body):
    since: AwareDatetime = Field(description="Re-send failed and exhausted deliveries created since then.")
    until: AwareDatetime | None = Field(default=None, description="... and before then (default: now).")

    @model_validator(mode="after")
    def _ordered(self) -> RecoverRequest:
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be later than since")
        return self


class Recovered(BaseModel):
    recovered: int = Field(description="How many deliveries were queued again.")


class WebhookPayload(BaseModel):
    """The body of every delivery."""

    type: str
    timestamp: datetime = Field(description="When the event happened (ISO 8601).")
    sequence: int | None = Field(default=None, description="The run's event sequence (run events).")
    data: JsonObject = Field(description="Run events: the run as GET /agent-eval/runs/{id} returns it.")
