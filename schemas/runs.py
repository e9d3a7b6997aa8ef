"""What a run stores about how it was set up: the snapshot taken when it was triggered."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints, field_validator

from schemas.agents import AgentOverrides
from schemas.api import QueueStatus, RunStatus, TerminationReason, Turn
from schemas.bodies import Body
from schemas.cases import Case
from schemas.evaluation import AssertionResult, Evaluation
from schemas.fields import QueryDateTime
from schemas.pages import ListQuery

LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^=]+$")]
LabelValue = Annotated[str, StringConstraints(max_length=200)]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=20)]


class Prompts(BaseModel):
    """The exact system prompts sent (filled in when the run starts)."""

    agent: str | None = None
    persona: str | None = None


class RunConfig(BaseModel):
    """The immutable snapshot on `eval_runs.config`: the case as triggered, with the merged agent
    (agent ← case overrides ← run overrides) and the persona actually used embedded in it."""

    case: Case
    prompts: Prompts = Field(default_factory=Prompts)


class RunTrigger(Body):
    """POST /agent-eval/cases/{case_id}/run (every field optional)."""

    agent_overrides: AgentOverrides | None = Field(
        default=None, description="Layered over the case's overrides for this run only."
    )
    labels: Labels = Field(default_factory=dict, description="Free-form tags to filter runs by.")
    mode: Literal["text", "voice"] = Field(default="text", description="Only `text` runs exist.")


class CancelRequest(Body):
    """POST /agent-eval/runs/{id}/cancel takes no fields (an empty body or `{}`)."""


class Run(BaseModel):
    """A run as the API returns it. Score, pass/fail, evaluation and costs are final only when
    `queue_status` is `done`."""

    id: UUID
    company_id: UUID
    mode: Literal["text", "voice"]
    case_id: UUID | None
    case: Case = Field(description="The case as triggered, with the merged agent and persona used.")
    suite_id: UUID | None
    suite_run_id: UUID | None
    agent_id: UUID | None
    persona_id: UUID | None
    status: RunStatus
    queue_status: QueueStatus
    termination_reason: TerminationReason | None
    agent_model: str | None
    persona_model: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    cancel_requested_at: datetime | None
    score: float | None
    pass_fail: bool | None
    evaluation: Evaluation | None
    agent_input_tokens: int
    agent_output_tokens: int
    persona_input_tokens: int
    persona_output_tokens: int
    judge_input_tokens: int
    judge_output_tokens: int
    agent_cost_cents: int
    persona_cost_cents: int
    judge_cost_cents: int
    total_cost_cents: int
    uncollected_cents: int = Field(description="Cost the balance could not cover (never negative balances).")
    error: str | None
    error_code: str | None
    agent_overrides: AgentOverrides | None = Field(description="The per-run overrides, as sent.")
    labels: Labels
    prompts: Prompts = Field(description="The exact system prompts sent.")


class TurnList(BaseModel):
    data: list[Turn]


class EvaluationView(BaseModel):
    """`/evaluation`: null until the run is done."""

    score: float | None
    pass_fail: bool | None
    inconclusive: bool | None
    results: list[AssertionResult] | None
    status: RunStatus
    termination_reason: TerminationReason | None
    queue_status: QueueStatus


class RunListQuery(ListQuery):
    case_id: UUID | None = None
    suite_id: UUID | None = None
    suite_run_id: UUID | None = None
    status: RunStatus | None = None
    label: list[Annotated[str, StringConstraints(pattern=r"^[^=]{1,100}=.{0,200}$")]] = Field(
        default_factory=list, description="`key=value`; repeat to require several labels."
    )
    created_after: QueryDateTime | None = None
    created_before: QueryDateTime | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        """A query key given once arrives as text, repeated as a list: both mean a list."""
        return [value] if isinstance(value, str) else value
