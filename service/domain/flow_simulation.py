"""`POST /agents/{id}/flow/test`: a flow played hermetically against a list of caller lines.

The same decisions as a run (`flow_runtime`), with everything a run would reach outside made
deterministic and local: the caller says the given lines in order and hangs up after the last,
the evaluation step is the `scripted` choice, the agent answers with its scripted rules (the
node's, else the agent's), a non-literal line is said as written, every tool and integration is
mocked from its output schema, and `ai_extract` arguments take the caller's last message.
Nothing is stored and nothing is charged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import JsonValue

from schemas.agents import Agent
from schemas.api import TerminationReason
from schemas.flows import IntegrationCallNode
from service.domain import flow_tools
from service.domain.conversation import AnswerTools, Finish, Greet, Rules, Speak
from service.domain.flow_choice import candidates, decision_event, scripted_choice
from service.domain.flow_runtime import (
    Enter,
    Evaluate,
    Fire,
    FlowStep,
    Instructed,
    entered_event,
    next_flow_step,
    node_prompt,
)
from service.domain.flows import FlowGraph
from service.domain.messages import END_CONVERSATION
from service.domain.mocks import mock_result
from service.domain.prompts import agent_view
from service.domain.scripted import agent_reply
from service.domain.transcript import ToolCallRecord, TranscriptTurn

MAX_STEPS = 1_000
UNLIMITED_MS = 10**12


@dataclass(frozen=True)
class Row:
    """A simulated transcript row, not yet numbered."""

    role: str
    text: str | None = None
    tool_calls: tuple[ToolCallRecord, ...] = ()
    tool_result: dict[str, JsonValue] | None = None
    flow_event: dict[str, JsonValue] | None = None


@dataclass
class Simulation:
    """The played flow: the transcript, the nodes entered in order, and how it ended."""

    transcript: list[TranscriptTurn] = field(default_factory=list)
    termination_reason: TerminationReason | None = None
    error: str | None = None

    def path(self) -> list[str]:
        return [
            str((t.flow_event or {}).get("step_id"))
            for t in self.transcript
            if (t.flow_event or {}).get("type") == "flow_node_entered"
        ]

    def add(self, rows: Sequence[Row]) -> None:
        for row in rows:
            number = len(self.transcript) + 1
            self.transcript.append(
                TranscriptTurn(number, row.role, row.text, row.tool_calls, row.tool_result, row.flow_event)
            )


def simulate_flow(
    agent: Agent, graph: FlowGraph, caller_lines: Sequence[str], *, max_turns: int
) -> Simulation:
    """Play `graph` until it ends, the caller runs out of lines, or `max_turns` is reached."""
    rules = Rules(max_turns=max_turns, agent_speaks_first=False, greeting=None, budget_ms=UNLIMITED_MS)
    played = Simulation()
    passed = False
    for _ in range(MAX_STEPS):
        step = next_flow_step(played.transcript, graph, rules, 0, agent_passed=passed)
        if isinstance(step, Finish):
            played.termination_reason, played.error = step.reason, step.error
            return played
        rows = _act(step, played.transcript, agent, graph, caller_lines)
        passed = isinstance(step, Speak) and step.after_tools and not rows
        played.add(rows)
    played.termination_reason, played.error = "error", f"the flow did not end within {MAX_STEPS} steps"
    return played


def _act(
    step: FlowStep,
    transcript: Sequence[TranscriptTurn],
    agent: Agent,
    graph: FlowGraph,
    caller_lines: Sequence[str],
) -> list[Row]:
    if isinstance(step, Enter):
        return [Row("flow_event", flow_event=entered_event(graph, step))]
    if isinstance(step, Greet | Instructed):
        return [Row("agent", text=step.text if isinstance(step, Greet) else step.instruction)]
    if isinstance(step, Evaluate):
        message = next((t.text or "" for t in transcript if t.turn_number == step.turn_number), "")
        choice = scripted_choice(message, candidates(step.node, graph))
        return [Row("flow_event", flow_event=decision_event(step.node.id, choice, step.turn_number))]
    if isinstance(step, Fire):
        return _fire(step, transcript, agent, graph)
    if isinstance(step, AnswerTools):
        return [Row("tool_result", tool_result=_mocked(call, agent)) for call in step.calls]
    if isinstance(step, Speak) and step.who == "persona":
        said = sum(t.role == "persona" for t in transcript)
        if said < len(caller_lines):
            return [Row("persona", text=caller_lines[said])]
        return [Row("persona", tool_calls=(ToolCallRecord(f"end-{said}", END_CONVERSATION.name),))]
    prompt, node = node_prompt(transcript, graph, agent.system_prompt)
    rules = node.rules if node is not None and node.rules is not None else agent.rules or []
    reply = agent_reply(rules, agent_view(prompt, transcript))
    if isinstance(step, Speak) and step.after_tools and reply.text is None and not reply.tool_calls:
        return []  # the agent passes: the caller speaks
    return [Row("agent", text=reply.text, tool_calls=reply.tool_calls)]


def _fire(step: Fire, transcript: Sequence[TranscriptTurn], agent: Agent, graph: FlowGraph) -> list[Row]:
    node = step.node
    wanted = flow_tools.extraction_wanted(node.args_template)
    extracted = flow_tools.scripted_extraction(wanted, transcript)
    firing = flow_tools.prepare_firing(node, agent.tools, graph.metadata, transcript, extracted)
    if isinstance(node, IntegrationCallNode):
        answer = flow_tools.integration_answer(node, firing.call.arguments, firing.call.id)
    elif firing.tool is None:
        answer = firing.missing_tool()
    else:
        answer = _mocked(firing.call, agent)
    event = flow_tools.result_event(node, firing, answer, 0)
    return [
        Row("agent", text=node.pre_fire_announcement or None, tool_calls=(firing.call,)),
        Row("tool_result", tool_result=answer),
        Row("flow_event", flow_event=event),
    ]


def _mocked(call: ToolCallRecord, agent: Agent) -> dict[str, JsonValue]:
    head: dict[str, JsonValue] = {"tool_call_id": call.id, "name": call.name}
    tool = next((t for t in agent.tools if t.name == call.name), None)
    if tool is None:
        return {**head, "mocked": False, "error": f"the agent has no tool named {call.name!r}"}
    return {**head, "mocked": True, "result": mock_result(tool.effective_output_schema())}
