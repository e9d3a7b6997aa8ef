"""A flow agent's nodes (reference §3.7 `flow_config`), as the flow runtime reads them.

`flow_config.nodes` is stored and echoed exactly as sent; each node is also read into one of
these models when the agent is saved (problems are 400 `FLOW_INVALID` issues) and when a run
plays it. Fields the reference documents but a text simulation does not use (`position`, voice
settings) are kept as extra fields.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from schemas.agents import FlowConfig, ScriptedRule
from schemas.fields import JsonObject

NodeId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=20_000)]


class FlowModel(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class NodeBase(FlowModel):
    id: NodeId
    name: Annotated[str, StringConstraints(max_length=200)] = ""

    def label(self) -> str:
        return self.name or self.id


class StartNode(NodeBase):
    """Where every conversation begins; its settings override the agent's `agent_speaks_first`
    and `greeting_message`."""

    type: Literal["start"]
    agent_speaks_first: bool = True
    greeting: Text | None = None
    is_literal: bool = Field(
        default=True, description="True: say `greeting` verbatim; false: an instruction."
    )
    auto_advance: bool = Field(
        default=True, description="False: enter `next_step_id` only after the caller's first reply."
    )
    next_step_id: NodeId


class Transition(FlowModel):
    id: NodeId
    label: Annotated[str, StringConstraints(max_length=200)] = ""
    description: Annotated[str, StringConstraints(min_length=1, max_length=2_000)]
    next_step_id: NodeId


class ConversationNode(NodeBase):
    """The agent talks under `instructions` (layered on the agent's system prompt); after each
    caller message an evaluation step picks a transition or stays."""

    type: Literal["conversation"]
    instructions: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    transitions: list[Transition] = Field(default_factory=list, max_length=50)
    is_global: bool = False
    global_jump_description: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    rules: Annotated[list[ScriptedRule], Field(max_length=200)] | None = Field(
        default=None, description="For the `scripted` model: this node's rules (else the agent's)."
    )


class CustomBranch(FlowModel):
    id: NodeId
    label: Annotated[str, StringConstraints(max_length=200)] = ""
    jsonpath: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    equals: JsonValue
    next_step_id: NodeId


class ToolRoutes(FlowModel):
    """Hard failure → `error_next_step_id`; else the first matching `custom` branch; else success."""

    success_next_step_id: NodeId | None = None
    error_next_step_id: NodeId | None = None
    custom: list[CustomBranch] = Field(default_factory=list, max_length=50)


ArgsTemplate = Annotated[
    dict[str, JsonValue],
    Field(
        max_length=100,
        description=(
            "Argument name → a literal (strings may use `{{metadata.key}}` and `{{node_id.arg}}`) "
            'or `{"ai_extract": "<what to extract>"}`, taken from the conversation.'
        ),
    ),
]


class ToolCallNode(NodeBase):
    type: Literal["tool_call"]
    tool_id: NodeId = Field(description="The `id` or `name` of one of the agent's tools.")
    config_override: JsonObject | None = None
    pre_fire_announcement: Text | None = None
    timeout_secs: Annotated[float, Field(gt=0, le=600)] | None = Field(
        default=None, description="Seconds the call may take (default: AGENT_EVAL_TOOL_TIMEOUT_S)."
    )
    args_template: ArgsTemplate | None = None
    transitions: ToolRoutes = Field(default_factory=ToolRoutes)


class IntegrationCallNode(NodeBase):
    """Answered by a mock shaped like the provider action's result: no real provider calls."""

    type: Literal["integration_call"]
    provider: Literal["google_calendar", "gmail"]
    integration_id: Annotated[str, StringConstraints(max_length=200)] | None = None
    action: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")]
    args_template: ArgsTemplate | None = None
    pre_fire_announcement: Text | None = None
    next_step_id: NodeId | None = None
    transitions: ToolRoutes = Field(default_factory=ToolRoutes)


class TransferNode(NodeBase):
    type: Literal["transfer"]
    transfer_to: Annotated[str, StringConstraints(max_length=200)] | None = None
    transfer_message: Text | None = None


class EndNode(NodeBase):
    type: Literal["end"]
    farewell: Text | None = None
    is_literal: bool = True


FlowNode = Annotated[
    StartNode | ConversationNode | ToolCallNode | IntegrationCallNode | TransferNode | EndNode,
    Field(discriminator="type"),
]
NodeKind = Literal["start", "conversation", "tool_call", "integration_call", "transfer", "end"]


class FlowTestRequest(BaseModel):
    """POST /agents/{id}/flow/test: the caller's lines, said in order (the caller hangs up after
    the last), and optionally an unsaved `flow_config` to try instead of the agent's own."""

    model_config = ConfigDict(extra="forbid", strict=True)

    caller_lines: Annotated[list[Annotated[str, StringConstraints(max_length=4_000)]], Field(max_length=100)]
    max_turns: Annotated[int, Field(ge=1, le=200)] = 50
    flow_config: FlowConfig | None = Field(
        default=None, description="A flow to try instead of the agent's saved one (not saved)."
    )


class FlowTestTurn(BaseModel):
    turn_number: int
    role: Literal["persona", "agent", "tool_result", "flow_event"]
    text: str | None
    tool_calls: list[JsonObject] | None
    tool_result: JsonObject | None
    flow_event: JsonObject | None


class FlowTestResult(BaseModel):
    """The flow played hermetically: the nodes entered in order, every row, how it ended.
    Nothing is stored and nothing is charged (`cost_cents` is always 0)."""

    agent_id: str
    path: list[str]
    termination_reason: str | None
    error: str | None
    turns: list[FlowTestTurn]
    cost_cents: int = 0
