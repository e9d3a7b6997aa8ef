"""Request and response bodies: the HTTP wire contract (OpenAPI is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.fields import JsonObject

RunStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
QueueStatus = Literal["pending", "claimed", "done"]
TerminationReason = Literal["agent_ended", "persona_goodbye", "max_turns", "timeout", "error", "cancelled"]
TurnRole = Literal["persona", "agent", "tool_result", "flow_event"]


class ErrorBody(BaseModel):
    """Every error response: a human message and a machine code, plus details for some codes."""

    model_config = ConfigDict(extra="allow")

    error: str
    code: str


class HealthBody(BaseModel):
    """`/healthz` and `/readyz`."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


class ToolCall(BaseModel):
    """One tool call an agent made in a turn."""

    id: str
    name: str
    arguments: JsonObject = Field(default_factory=dict)


class Turn(BaseModel):
    """One transcript row of a run, as `GET /agent-eval/runs/{id}/turns` returns it."""

    id: UUID
    run_id: UUID
    turn_number: int = Field(ge=1)
    created_at: datetime
    role: TurnRole
    text: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_result: JsonObject | None = None
    flow_event: JsonObject | None = None
    model: str | None = None
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cost_microcents: int = Field(default=0, ge=0, description="Exact cost: 10^-6 cents")
    cost_cents: int = Field(default=0, ge=0, description="cost_microcents rounded up to whole cents")
    rate_card_version: str | None = None
    latency_ms: int | None = Field(default=None, ge=0)


class RunSummary(BaseModel):
    """The run fields every run lifecycle event carries (DESIGN.md §5)."""

    id: UUID
    case_id: UUID | None
    suite_id: UUID | None
    suite_run_id: UUID | None
    status: RunStatus
    queue_status: QueueStatus
    termination_reason: TerminationReason | None
    score: float | None
    pass_fail: bool | None
    total_cost_cents: int
    error_code: str | None
    labels: dict[str, str] = Field(default_factory=dict)


class SuiteRunSummary(BaseModel):
    """The aggregate of one suite execution (reference §3.5 plus `done`, `inconclusive`, `errored`)."""

    suite_run_id: UUID
    suite_id: UUID
    total_runs: int
    completed: int
    in_flight: int
    cancelled: int
    passed: int
    failed: int
    errored: int = Field(description="Runs that ended in error (not counted as passed or failed).")
    inconclusive: int = Field(description="Completed runs whose judge could not decide.")
    done: bool = Field(description="Every run is done (queue_status done): the numbers are final.")
    total_cost_cents: int
    started_at: datetime | None
    ended_at: datetime | None
    score_avg: float | None
    pass_rate: float | None
