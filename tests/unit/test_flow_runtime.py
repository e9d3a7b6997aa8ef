"""Flow agents played hermetically (the pure runtime and the scripted choices): every node type,
every transition kind, global jumps, tool error routing and custom branches."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from schemas.agents import Agent
from service.core.errors import FlowUnreadable
from service.domain.flow_choice import Option, read_choice, scripted_choice
from service.domain.flow_simulation import Simulation, simulate_flow
from service.domain.flows import flow_issues, read_flow
from tests.support.flows import SLOTS_TOOL, flow_agent, with_node


def play(lines: list[str], agent: Agent | None = None, max_turns: int = 30) -> Simulation:
    agent = agent or flow_agent()
    assert agent.flow_config is not None
    graph = read_flow(agent.flow_config.nodes, agent.flow_config.metadata)
    return simulate_flow(agent, graph, lines, max_turns=max_turns)


def events(played: Simulation, kind: str) -> list[dict[str, JsonValue]]:
    return [t.flow_event for t in played.transcript if t.flow_event and t.flow_event.get("type") == kind]


def agent_lines(played: Simulation) -> list[str]:
    return [t.text for t in played.transcript if t.role == "agent" and t.text]


def test_a_booking_walks_every_firing_node_to_the_end() -> None:
    played = play(["I need an appointment on Friday", "yes"])
    assert played.path() == ["start", "triage", "lookup", "offer", "book", "bye"]
    assert played.termination_reason == "agent_ended"
    assert agent_lines(played) == [
        "Acme, how can I help?",
        "Let me check the calendar.",
        "See you then, goodbye!",
    ]
    lookup, book = events(played, "flow_tool_result")
    assert lookup["args"] == {"day": "I need an appointment on Friday", "site": "Main St"}
    assert lookup["arg_sources"] == {"day": "ai_extract", "site": "literal"}
    assert lookup["status"] == "success"
    assert lookup["route"] == {
        "next_step_id": "offer",
        "outcome": "success",
        "branch_id": None,
    }
    assert book["kind"] == "integration"
    assert book["provider"] == "google_calendar"
    assert book["args"] == {"summary": "Visit at Main St on I need an appointment on Friday"}
    entered = events(played, "flow_node_entered")
    assert [e["reason"] for e in entered] == [
        "start",
        "auto_advance",
        "transition",
        "tool_success",
        "transition",
        "tool_success",
    ]
    assert entered[2]["via_transition_id"] == "to_booking"
    assert entered[2]["node_kind"] == "tool_call"


def test_the_tool_call_is_an_agent_tool_call_with_its_result() -> None:
    played = play(["appointment please", "yes"])
    calls = [c for t in played.transcript if t.role == "agent" for c in t.tool_calls]
    assert [c.name for c in calls] == ["check_slots", "google_calendar_create_event"]
    results = [t.tool_result for t in played.transcript if t.role == "tool_result"]
    assert results[0] is not None
    assert results[0]["result"] == {"available": True, "day": "mock"}
    assert results[1] is not None
    assert results[1]["mocked"] is True


def test_a_message_matching_no_transition_stays_in_the_node() -> None:
    played = play(["hello there"])
    decisions = events(played, "flow_eval_decision")
    assert decisions[0]["decision"] == "stay"
    assert decisions[0]["valid"] is True
    assert played.path() == ["start", "triage"]
    assert "Could you tell me more?" in agent_lines(played)
    assert played.termination_reason == "persona_goodbye"


def test_description_words_choose_a_transition_without_a_label() -> None:
    played = play(["my invoices look wrong"])
    assert played.path() == ["start", "triage", "billing"]
    assert events(played, "flow_eval_decision")[0]["transition_id"] == "to_billing"


def test_a_global_node_is_reachable_from_any_conversation_node() -> None:
    played = play(["I want a person", "please"])
    assert played.path() == ["start", "triage", "human", "handoff"]
    decision = events(played, "flow_eval_decision")[0]
    assert decision["kind"] == "global_jump"
    assert decision["target_step_id"] == "human"
    assert events(played, "flow_node_entered")[2]["reason"] == "global_jump"
    assert agent_lines(played)[-1] == "Transferring you now."
    assert played.termination_reason == "agent_ended"


def test_a_hard_tool_failure_takes_the_error_route() -> None:
    played = play(["appointment"], flow_agent(tools=[]))  # the node's tool is missing: a hard failure
    assert played.path() == ["start", "triage", "lookup", "sorry"]
    result = events(played, "flow_tool_result")[0]
    assert result["status"] == "error"
    assert "no tool" in str(result["error"])
    assert agent_lines(played)[-1] == "The calendar is down, sorry."


def test_the_first_matching_custom_branch_wins() -> None:
    full: dict[str, JsonValue] = {
        **SLOTS_TOOL,
        "output_schema": {"type": "object", "properties": {"available": {"const": False}}},
    }
    played = play(["appointment"], flow_agent(tools=[full]))
    assert played.path() == ["start", "triage", "lookup", "waitlist"]
    assert events(played, "flow_node_entered")[-1]["via_transition_id"] == "full"
    assert events(played, "flow_node_entered")[-1]["reason"] == "tool_branch"


def test_a_failure_without_an_error_route_ends_the_run_failed() -> None:
    nodes = with_node("lookup", transitions={"success_next_step_id": "offer"})
    played = play(["appointment"], flow_agent(nodes, tools=[]))
    assert played.termination_reason == "error"
    assert played.error is not None
    assert "lookup" in played.error


def test_start_without_auto_advance_waits_for_the_callers_first_reply() -> None:
    played = play(["appointment"], flow_agent(with_node("start", auto_advance=False)))
    entered = events(played, "flow_node_entered")
    assert entered[1]["reason"] == "caller_replied"
    assert played.path()[:3] == ["start", "triage", "lookup"]  # the first reply is evaluated in triage


def test_the_caller_opens_when_the_agent_does_not_speak_first() -> None:
    played = play(["hello"], flow_agent(with_node("start", agent_speaks_first=False)))
    spoken = [t.role for t in played.transcript if t.role in ("persona", "agent")]
    assert spoken[0] == "persona"


def test_a_non_literal_greeting_is_an_instruction() -> None:
    played = play([], flow_agent(with_node("start", greeting="Greet the caller warmly", is_literal=False)))
    assert agent_lines(played)[0] == "Greet the caller warmly"  # the scripted model says it as written


def test_max_turns_ends_a_flow_like_any_run() -> None:
    played = play(["hi", "hi", "hi", "hi"], max_turns=3)
    assert played.termination_reason == "max_turns"


def test_scripted_choice_prefers_labels_then_shared_words() -> None:
    options = [
        Option("a", "refund", "Money back for an order", "t1", "transition"),
        Option("b", "", "Delivery tracking for parcels", "t2", "transition"),
    ]
    assert scripted_choice("I'd like a refund", options).option == options[0]
    assert scripted_choice("where is my parcel tracking", options).option == options[1]
    assert scripted_choice("what about the weather", options).option is None


def test_a_model_answer_naming_no_option_stays_invalid() -> None:
    options = [Option("a", "x", "y", "t1", "transition")]
    assert (
        read_choice('{"decision": "transition", "option_id": "t9", "reasoning": ""}', options).valid is False
    )
    assert read_choice("not json", options).valid is False
    chosen = read_choice('{"decision": "transition", "option_id": "t1", "reasoning": "r"}', options)
    assert chosen.option == options[0]
    assert chosen.valid


@pytest.mark.parametrize(
    ("node", "code"),
    [
        ({"id": "x", "type": "conversation", "name": "X"}, "invalid_node"),
        (
            {
                "id": "x",
                "type": "tool_call",
                "name": "X",
                "transitions": {
                    "custom": [{"id": "c", "jsonpath": "$[[", "equals": 1, "next_step_id": "start"}]
                },
                "tool_id": "t",
            },
            "invalid_jsonpath",
        ),
        ({"id": "x", "type": "teleport"}, "unknown_node_type"),
    ],
)
def test_nodes_are_checked_for_their_type(node: dict[str, JsonValue], code: str) -> None:
    nodes: list[dict[str, JsonValue]] = [{"id": "start", "type": "start", "next_step_id": "x"}, node]
    assert code in {issue.code for issue in flow_issues(nodes)}
    with pytest.raises(FlowUnreadable):
        read_flow(nodes, None)
