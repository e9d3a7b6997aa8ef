"""Agents (`/agents`): every field of the reference's agent object, plus `model`, `rules`, and
agents of `"type": "http"` (the user's own agent, called at its `endpoint`: `schemas.endpoints`).

Voice-only fields are accepted, stored and returned so existing clients keep working; a text
simulation ignores them (each says so in its description). Structural checks that need more
than a type — a flow's graph, tool parameter schemas, regexes, the provider registry — run in
`service.domain.agents` when an agent is saved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from schemas.bodies import Body, Patch
from schemas.endpoints import AgentEndpoint, EndpointOverride
from schemas.fields import JsonObject, Language, LongText, Name, ShortText, reject_null

VOICE_ONLY = "Voice only: stored and returned, ignored by text simulations."
SYSTEM_TOOL = "end_call"
AgentType = Literal["prompt", "flow", "http"]

ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ModelName = Annotated[
    str,
    StringConstraints(pattern=r"^(scripted|[a-z0-9][a-z0-9_.-]{0,63}:\S{1,200})$"),
    Field(description="`<provider>:<model>` with a provider from AGENT_EVAL_PROVIDERS, or `scripted`."),
]
Url = Annotated[str, StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://\S+$")]
Temperature = Annotated[float, Field(ge=0, le=2)]
WebhookEvent = Literal[
    "call.started",
    "call.answered",
    "call.ended",
    "call.no_answer",
    "call.failed",
    "call.dnc_blocked",
    "transcript.ready",
    "call.analyzed",
]
BackgroundSound = Literal["call_center", "open_office", "cafe", "outdoor"]


class ToolConfig(BaseModel):
    """The reference's tool `config`: `url`, `parameters`, `output_schema`, plus whatever else it carries."""

    model_config = ConfigDict(extra="allow", strict=True)

    url: Url | None = None
    parameters: JsonObject | None = None
    output_schema: JsonObject | None = None

    @model_serializer(mode="wrap")
    def _as_sent(self, handler: SerializerFunctionWrapHandler) -> JsonObject:
        """Echo the config as the client sent it: no keys it did not send."""
        data: JsonObject = handler(self)
        sent = self.model_fields_set | set(self.model_extra or {})
        return {key: value for key, value in data.items() if key in sent}


class Tool(Body):
    """A tool the agent may call: ours (`parameters`, `url`, `output_schema`) or the reference shape
    (`config.url`, `config.parameters`, `config.output_schema`); top-level values win."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    name: ToolName
    type: Literal["webhook", "system", "function"] = "function"
    description: ShortText = ""
    parameters: JsonObject | None = Field(default=None, description="JSON Schema of the arguments.")
    url: Url | None = Field(default=None, description="HTTPS endpoint called when the tool fires for real.")
    output_schema: JsonObject | None = Field(
        default=None, description="JSON Schema that shapes mock results."
    )
    config: ToolConfig | None = None
    execution_order: Annotated[int, Field(ge=0, le=1000)] | None = None

    def effective_url(self) -> str | None:
        return self.url or (self.config.url if self.config else None)

    def effective_parameters(self) -> JsonObject | None:
        return self.parameters or (self.config.parameters if self.config else None)

    def effective_output_schema(self) -> JsonObject | None:
        return self.output_schema or (self.config.output_schema if self.config else None)


class FlowConfig(BaseModel):
    """A flow agent's graph; nodes are checked structurally when the agent is saved."""

    model_config = ConfigDict(extra="allow", strict=True)

    flow_config_version: str = "1"
    nodes: list[JsonObject] = Field(max_length=500)
    metadata: JsonObject | None = None


class ToolInvocation(Body):
    name: ToolName
    arguments: JsonObject = Field(default_factory=dict)


class ScriptedRule(Body):
    """For `model: "scripted"`: when the persona's last message matches `when`, say and/or call."""

    when: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    say: LongText | None = None
    call_tool: ToolInvocation | None = None
    end: bool = False

    @model_validator(mode="after")
    def _does_something(self) -> ScriptedRule:
        if self.say is None and self.call_tool is None and not self.end:
            raise ValueError("a rule needs `say`, `call_tool` or `end: true`")
        return self


class ExtractionParameter(Body):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][A-Za-z0-9]{0,63}$")]
    description: ShortText = ""


class AgentFields(Body):
    """Every agent field with its default (the create body and the response share them)."""

    name: Name
    type: AgentType = Field(
        default="prompt",
        description="Cannot change after creation. `http`: the user's own agent, called at `endpoint`.",
    )
    system_prompt: LongText = Field(
        default="",
        description="Required for prompt and flow agents. An http agent is sent it as a leading "
        "system message when it is not empty.",
    )
    description: ShortText | None = None
    temperature: Temperature = 0.5
    greeting_message: LongText | None = None
    agent_speaks_first: bool = True
    language: Language = "en"
    model: ModelName | None = None
    tools: list[Tool] = Field(default_factory=list, max_length=64)
    flow_config: FlowConfig | None = None
    endpoint: AgentEndpoint | None = Field(
        default=None, description="Required for (and only for) http agents."
    )
    rules: Annotated[list[ScriptedRule], Field(max_length=200)] | None = None
    is_active: bool = True
    max_call_duration_secs: int = Field(
        default=600, ge=0, le=3600, description="Wall-clock budget of a run (0: AGENT_EVAL_RUN_TIMEOUT_S)."
    )
    voice: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        default=None, description=VOICE_ONLY
    )
    vad_stop_secs: float = Field(default=0.5, ge=0.05, le=5.0, description=VOICE_ONLY)
    vad_start_secs: float = Field(default=0.2, ge=0.05, le=2.0, description=VOICE_ONLY)
    vad_confidence: float = Field(default=0.7, ge=0.0, le=1.0, description=VOICE_ONLY)
    silence_timeout_secs: int = Field(default=60, ge=10, le=900, description=VOICE_ONLY)
    max_continuous_speech_secs: int = Field(default=120, ge=0, le=300, description=VOICE_ONLY)
    background_sound: BackgroundSound | None = Field(default=None, description=VOICE_ONLY)
    background_sound_volume: float = Field(default=0.3, ge=0.0, le=0.6, description=VOICE_ONLY)
    extraction_parameters: list[ExtractionParameter] = Field(default_factory=list, max_length=100)
    lead_memory_enabled: bool = True
    webhook_url: Url | None = Field(default=None, description=VOICE_ONLY)
    webhook_events: list[WebhookEvent] = Field(default_factory=list, description=VOICE_ONLY)


class AgentCreate(AgentFields):
    """POST /agents."""

    @model_validator(mode="after")
    def _flow_config_matches_type(self) -> AgentCreate:
        if self.type == "flow" and self.flow_config is None:
            raise ValueError("flow agents need a flow_config")
        if self.type != "flow" and self.flow_config is not None:
            raise ValueError(f"{self.type} agents cannot have a flow_config")
        return self


class AgentOverrides(Patch):
    """Per-case or per-run overrides: any agent field but `type`; top-level keys replace the agent's."""

    name: Name | SkipJsonSchema[None] = None
    system_prompt: LongText | SkipJsonSchema[None] = None
    description: ShortText | None = None
    temperature: Temperature | SkipJsonSchema[None] = None
    greeting_message: LongText | None = None
    agent_speaks_first: bool | SkipJsonSchema[None] = None
    language: Language | SkipJsonSchema[None] = None
    model: ModelName | None = None
    tools: Annotated[list[Tool], Field(max_length=64)] | SkipJsonSchema[None] = None
    flow_config: FlowConfig | None = None
    endpoint: EndpointOverride | None = Field(
        default=None, description="An http agent's endpoint for this case or run; secrets stay the agent's."
    )
    rules: Annotated[list[ScriptedRule], Field(max_length=200)] | None = None
    is_active: bool | SkipJsonSchema[None] = None
    max_call_duration_secs: Annotated[int, Field(ge=0, le=3600)] | SkipJsonSchema[None] = None
    voice: Annotated[str, StringConstraints(max_length=100)] | None = None
    vad_stop_secs: Annotated[float, Field(ge=0.05, le=5.0)] | SkipJsonSchema[None] = None
    vad_start_secs: Annotated[float, Field(ge=0.05, le=2.0)] | SkipJsonSchema[None] = None
    vad_confidence: Annotated[float, Field(ge=0.0, le=1.0)] | SkipJsonSchema[None] = None
    silence_timeout_secs: Annotated[int, Field(ge=10, le=900)] | SkipJsonSchema[None] = None
    max_continuous_speech_secs: Annotated[int, Field(ge=0, le=300)] | SkipJsonSchema[None] = None
    background_sound: BackgroundSound | None = None
    background_sound_volume: Annotated[float, Field(ge=0.0, le=0.6)] | SkipJsonSchema[None] = None
    extraction_parameters: (
        Annotated[list[ExtractionParameter], Field(max_length=100)] | SkipJsonSchema[None]
    ) = None
    lead_memory_enabled: bool | SkipJsonSchema[None] = None
    webhook_url: Url | None = None
    webhook_events: list[WebhookEvent] | SkipJsonSchema[None] = None

    _not_null = field_validator(
        "name",
        "system_prompt",
        "temperature",
        "agent_speaks_first",
        "language",
        "tools",
        "is_active",
        "max_call_duration_secs",
        "vad_stop_secs",
        "vad_start_secs",
        "vad_confidence",
        "silence_timeout_secs",
        "max_continuous_speech_secs",
        "background_sound_volume",
        "extraction_parameters",
        "lead_memory_enabled",
        "webhook_events",
    )(reject_null)


class AgentPatch(AgentOverrides):
    """PATCH /agents/{id}: send only what changes. `type` is accepted only if it does not change."""

    type: AgentType | SkipJsonSchema[None] = None
    # The override's endpoint type narrowed back to the agent's: a PATCH carries secrets, an
    # override never does (mypy sees an incompatible override of the parent's field).
    endpoint: AgentEndpoint | None = Field(  # type: ignore[assignment]
        default=None,
        description='The whole endpoint. A secret sent as "***" keeps its stored value; without '
        "`secrets` every stored secret is kept.",
    )


class Agent(AgentFields):
    """An agent as the API returns it."""

    model_config = ConfigDict(extra="forbid", strict=False)

    id: UUID
    company_id: UUID
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
