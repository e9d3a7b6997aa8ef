"""Cases (`/agent-eval/cases`): one runnable scenario — agent, persona, scenario, assertions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from schemas.agents import Agent, AgentOverrides, ToolName
from schemas.assertions import Assertion
from schemas.bodies import Body, Patch
from schemas.fields import Name, ShortText, reject_null
from schemas.personas import Persona

ToolPolicy = Literal["mock", "real", "allowlist"]
Scenario = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
MaxTurns = Field(default=20, ge=1, le=100, description="Persona and agent messages before the run stops.")
PassThreshold = Field(default=80.0, ge=0, le=100, description="Score (0-100) needed for pass_fail = true.")
Criteria: list[Assertion] = Field(
    default_factory=list,
    max_length=100,
    description="Assertions. The secondary source's `kind`/`phrase`/`match_type`/`case_sensitive` are "
    "accepted and rewritten to `type`/`pattern`.",
)


class CaseFields(Body):
    name: Name
    scenario: Scenario
    description: ShortText | None = None
    suite_id: UUID | None = None
    success_criteria: list[Assertion] = Criteria
    max_turns: int = MaxTurns
    pass_threshold: float = PassThreshold
    agent_overrides: AgentOverrides | None = None
    tool_policy: ToolPolicy = "mock"
    tool_allowlist: list[ToolName] = Field(default_factory=list, max_length=64)


class CaseCreate(CaseFields):
    agent_id: UUID | None = Field(default=None, description="Required unless the suite has an agent_id.")
    persona_id: UUID


class CasePatch(Patch):
    """PATCH a case. `agent_id` cannot change (create a new case instead); the rest can."""

    name: Name | SkipJsonSchema[None] = None
    scenario: Scenario | SkipJsonSchema[None] = None
    description: ShortText | None = None
    suite_id: UUID | None = None
    persona_id: UUID | SkipJsonSchema[None] = None
    agent_id: UUID | SkipJsonSchema[None] = Field(default=None, description="Accepted only if unchanged.")
    success_criteria: Annotated[list[Assertion], Field(max_length=100)] | SkipJsonSchema[None] = None
    max_turns: Annotated[int, Field(ge=1, le=100)] | SkipJsonSchema[None] = None
    pass_threshold: Annotated[float, Field(ge=0, le=100)] | SkipJsonSchema[None] = None
    agent_overrides: AgentOverrides | None = None
    tool_policy: ToolPolicy | SkipJsonSchema[None] = None
    tool_allowlist: Annotated[list[ToolName], Field(max_length=64)] | SkipJsonSchema[None] = None

    _not_null = field_validator(
        "name",
        "scenario",
        "persona_id",
        "agent_id",
        "success_criteria",
        "max_turns",
        "pass_threshold",
        "tool_policy",
        "tool_allowlist",
    )(reject_null)


class Case(CaseFields):
    """A case as the API returns it, with its agent and persona embedded."""

    model_config = ConfigDict(extra="forbid", strict=False)

    id: UUID
    company_id: UUID
    agent_id: UUID
    persona_id: UUID
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    agent: Agent
    persona: Persona
