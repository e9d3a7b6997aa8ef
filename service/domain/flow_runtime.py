"""Flow agents turn by turn (reference §3.7; DESIGN.md §6): what happens next, as a pure function
of the persisted transcript, so a run resumed by another executor continues where it was.

The current node is the last `flow_node_entered` row. At `start` the agent greets (said verbatim,
or in its own words when `is_literal` is false) and enters `next_step_id` at once
(`auto_advance`) or after the caller's first reply. In a `conversation` node, each new caller
message is first evaluated (a transition, a global node, or stay), then the agent answers under
the node's instructions. A `tool_call` or `integration_call` node fires once (its announcement
said first) and is left by the route recorded with its result. `transfer` and `end` say their
message and end the run (`agent_ended`). Endings that hold for any agent — the caller hanging
up, `end_call`, `max_turns`, the time budget — apply to flows as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from schemas.flows import (
    ConversationNode,
    EndNode,
    FlowNode,
    IntegrationCallNode,
    StartNode,
    ToolCallNode,
    TransferNode,
)
from service.domain.conversation import (
    AnswerTools,
    Finish,
    Greet,
    Rules,
    Speak,
    Step,
    calls,
    hung_up,
    pending_calls,
    spoken_turns,
)
from service.domain.flow_choice import candidates
from service.domain.flows import FlowGraph
from service.domain.messages import END_CONVERSATION
from service.domain.transcript import TranscriptTurn

NODE_ENTERED, EVAL_DECISION, TOOL_RESULT = "flow_node_entered", "flow_eval_decision", "flow_tool_result"
FIRING_KINDS = ("tool_call", "integration_call")


@dataclass(frozen=True)
class Enter:
    """Enter a node (recorded as a `flow_node_entered` row)."""

    node_id: str
    reason: str  # start | auto_advance | caller_replied | transition | global_jump | tool_success | …
    via_transition_id: str | None = None


@dataclass(frozen=True)
class Evaluate:
    """Choose a transition (or stay) for the caller's message at `turn_number`."""

    node: ConversationNode
    turn_number: int


@dataclass(frozen=True)
class Instructed:
    """The agent says, in its own words, what `instruction` asks (a non-literal greeting or farewell)."""

    instruction: str


@dataclass(frozen=True)
class Fire:
    """Call the tool (or the mocked integration) of a `tool_call` / `integration_call` node."""

    node: ToolCallNode | IntegrationCallNode


FlowStep = Step | Enter | Evaluate | Instructed | Fire


@dataclass(frozen=True)
class Position:
    """Where the flow is: the current node, the rows since it was entered, the kind of node before."""

    node: FlowNode
    since: tuple[TranscriptTurn, ...]
    came_from: str | None


def event_type(turn: TranscriptTurn) -> str | None:
    value = (turn.flow_event or {}).get("type") if turn.role == "flow_event" else None
    return value if isinstance(value, str) else None


def position(transcript: Sequence[TranscriptTurn], graph: FlowGraph) -> Position | None:
    """The current node (the last one entered), or None before the start node is entered."""
    entered = [i for i, turn in enumerate(transcript) if event_type(turn) == NODE_ENTERED]
    if not entered:
        return None
    event = transcript[entered[-1]].flow_event or {}
    node = graph.node(str(event.get("step_id")))
    if node is None:
        return None
    before = transcript[entered[-2]].flow_event or {} if len(entered) > 1 else {}
    came_from = before.get("node_kind")
    return Position(
        node, tuple(transcript[entered[-1] + 1 :]), came_from if isinstance(came_from, str) else None
    )


def next_flow_step(
    transcript: Sequence[TranscriptTurn],
    graph: FlowGraph,
    rules: Rules,
    elapsed_ms: int,
    *,
    agent_passed: bool = False,
) -> FlowStep:
    """What the flow does next, given everything persisted so far."""
    if not transcript:
        return Finish("timeout") if elapsed_ms >= rules.budget_ms else Enter(graph.start.id, "start")
    here = position(transcript, graph)
    ending = _ending(transcript, here, rules, elapsed_ms)
    if ending is not None:
        return ending
    if here is None:
        return Enter(graph.start.id, "start")
    node = here.node
    if isinstance(node, StartNode):
        return _at_start(node, here)
    if isinstance(node, ConversationNode):
        return _in_conversation(node, here, transcript, graph, agent_passed=agent_passed)
    if isinstance(node, ToolCallNode | IntegrationCallNode):
        return _at_tool(node, here)
    message = (node.farewell if isinstance(node, EndNode) else node.transfer_message) or ""
    literal = node.is_literal if isinstance(node, EndNode) else True
    return Greet(message) if literal else Instructed(message)  # only when unsaid (see _ending)


def _ending(
    transcript: Sequence[TranscriptTurn], here: Position | None, rules: Rules, elapsed_ms: int
) -> FlowStep | None:
    """An ending (or tool calls to answer first) that takes precedence over the node's own step."""
    last = transcript[-1]
    if last.role == "persona" and calls(last, END_CONVERSATION.name):
        return Finish("persona_goodbye")
    pending = pending_calls(transcript)
    if pending:
        return AnswerTools(pending)
    if last.role in ("agent", "tool_result") and hung_up(transcript):
        return Finish("agent_ended")
    if here is not None and _finished_here(here):
        return Finish("agent_ended")
    if spoken_turns(transcript) >= rules.max_turns:
        return Finish("max_turns")
    if elapsed_ms >= rules.budget_ms:
        return Finish("timeout")
    return None


def _finished_here(here: Position) -> bool:
    """A `transfer` or `end` node whose message is said (or that has none)."""
    node = here.node
    if not isinstance(node, EndNode | TransferNode):
        return False
    message = node.farewell if isinstance(node, EndNode) else node.transfer_message
    return not message or _agent_spoke(here.since)


def _agent_spoke(rows: Sequence[TranscriptTurn]) -> bool:
    """The agent had its turn (even one where its model said nothing, which is not asked again)."""
    return any(t.role == "agent" for t in rows)


def _at_start(node: StartNode, here: Position) -> FlowStep:
    if node.agent_speaks_first and node.greeting and not _agent_spoke(here.since):
        return Greet(node.greeting) if node.is_literal else Instructed(node.greeting)
    if node.auto_advance:
        return Enter(node.next_step_id, "auto_advance")
    if any(t.role == "persona" for t in here.since):
        return Enter(node.next_step_id, "caller_replied")
    return Speak("persona")


def _in_conversation(
    node: ConversationNode,
    here: Position,
    transcript: Sequence[TranscriptTurn],
    graph: FlowGraph,
    *,
    agent_passed: bool,
) -> FlowStep:
    last = transcript[-1]
    chosen = _chosen(last, node)
    if chosen is not None:
        return chosen
    may_speak = Speak("persona") if agent_passed else Speak("agent", after_tools=True)  # it may pass
    if last.role == "tool_result":
        return may_speak
    latest = next((t for t in reversed(transcript) if t.role in ("persona", "agent")), None)
    if latest is not None and latest.role == "persona":
        if not _evaluated(transcript, latest) and candidates(node, graph):
            return Evaluate(node, latest.turn_number)
        return Speak("agent")
    if here.came_from in FIRING_KINDS and not _agent_spoke(here.since):
        return may_speak  # to say what the tool found
    if latest is None and graph.start.agent_speaks_first:
        return may_speak  # to open, the start node having no greeting
    return Speak("persona")


def _chosen(last: TranscriptTurn, node: ConversationNode) -> Enter | None:
    """The node a just-recorded decision moves to."""
    event = last.flow_event or {}
    if event_type(last) != EVAL_DECISION or event.get("step_id") != node.id:
        return None
    target = event.get("target_step_id")
    if event.get("decision") != "transition" or not event.get("valid") or not isinstance(target, str):
        return None
    via = event.get("transition_id")
    reason = "global_jump" if via is None else "transition"
    return Enter(target, reason, via if isinstance(via, str) else None)


def _evaluated(transcript: Sequence[TranscriptTurn], message: TranscriptTurn) -> bool:
    return any(event_type(t) == EVAL_DECISION for t in transcript if t.turn_number > message.turn_number)


def _at_tool(node: ToolCallNode | IntegrationCallNode, here: Position) -> FlowStep:
    result = next((t.flow_event for t in here.since if event_type(t) == TOOL_RESULT), None)
    if result is None:
        return Fire(node)
    route = result.get("route")
    target = route.get("next_step_id") if isinstance(route, dict) else None
    if not isinstance(target, str):
        status = result.get("status")
        return Finish(
            "error", f"flow node {node.id!r} has no next step for its {status} result", "FLOW_DEAD_END"
        )
    reason = _route_reason(route)
    branch = route.get("branch_id") if isinstance(route, dict) else None
    return Enter(target, reason, branch if isinstance(branch, str) else None)


def _route_reason(route: JsonValue) -> str:
    outcome = route.get("outcome") if isinstance(route, dict) else None
    return f"tool_{outcome}" if isinstance(outcome, str) else "tool_success"


def entered_event(graph: FlowGraph, step: Enter) -> dict[str, JsonValue]:
    """The `flow_node_entered` payload (reference §3.2)."""
    node = graph.node(step.node_id)
    return {
        "type": NODE_ENTERED,
        "step_id": step.node_id,
        "node_kind": node.type if node is not None else None,
        "name": node.label() if node is not None else step.node_id,
        "reason": step.reason,
        "via_transition_id": step.via_transition_id,
    }


def node_prompt(
    transcript: Sequence[TranscriptTurn], graph: FlowGraph, base_prompt: str
) -> tuple[str, ConversationNode | None]:
    """The agent's system prompt where the flow is: its own, then the current conversation
    node's instructions (and that node, whose scripted `rules` replace the agent's)."""
    here = position(transcript, graph)
    node = here.node if here is not None else None
    if isinstance(node, ConversationNode):
        return f"{base_prompt}\n\n{node.instructions}", node
    return base_prompt, None
