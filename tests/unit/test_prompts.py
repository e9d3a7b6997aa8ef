"""What each side of a simulated conversation is told, and how each sees the transcript."""

from __future__ import annotations

import json

import pytest
from pydantic import JsonValue

from schemas.agents import Agent
from schemas.personas import Persona
from service.domain.messages import EMPTY_OBJECT, ChatMessage, ToolSpec
from service.domain.prompts import (
    PERSONA_OPENS,
    agent_prompt,
    agent_tools,
    agent_view,
    persona_prompt,
    persona_tools,
    persona_view,
)
from service.domain.transcript import ToolCallRecord, TranscriptTurn

IDS: dict[str, JsonValue] = {
    "id": "00000000-0000-4000-8000-000000000001",
    "company_id": "00000000-0000-4000-8000-000000000002",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}
LOOKUP_PARAMS: dict[str, JsonValue] = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
}


def make_agent(**fields: JsonValue) -> Agent:
    return Agent.model_validate({**IDS, "name": "Support", "system_prompt": "You help.", **fields})


def make_persona(**fields: JsonValue) -> Persona:
    return Persona.model_validate({**IDS, "name": "Dana", "identity_prompt": "You are Dana.", **fields})


def persona(turn: int, text: str | None, *calls: ToolCallRecord) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="persona", text=text, tool_calls=calls)


def agent(turn: int, text: str | None, *calls: ToolCallRecord) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="agent", text=text, tool_calls=calls)


def tool_result(turn: int, body: dict[str, JsonValue]) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="tool_result", tool_result=body)


LOOKUP = ToolCallRecord("c1", "lookup", {"order_id": "A1"})
CONVERSATION = [
    persona(1, "Where is order A1?"),
    agent(2, "Let me check.", LOOKUP),
    tool_result(3, {"tool_call_id": "c1", "name": "lookup", "mocked": True, "result": {"status": "shipped"}}),
    agent(4, "It has shipped."),
    persona(5, "Thanks, bye!", ToolCallRecord("e1", "end_conversation")),
]

# --- the persona's prompt ---------------------------------------------------------------------------


def test_persona_prompt_tells_identity_scenario_and_language_in_that_order() -> None:
    prompt = persona_prompt(make_persona(identity_prompt="  You are Dana, a customer.\n"), "  Order late. \n")

    identity, scenario, language = (
        prompt.index("You are Dana, a customer."),
        prompt.index("Scenario:\nOrder late."),
        prompt.index("Speak only English."),
    )
    assert prompt.startswith("You are Dana, a customer.")
    assert identity < scenario < language


def test_persona_prompt_lists_each_behavior_trait_with_non_text_values_as_json() -> None:
    traits: dict[str, JsonValue] = {"patience": "low", "verbosity": 2, "topics": ["billing", "refunds"]}

    prompt = persona_prompt(make_persona(behavior_traits=traits), "A scenario.")

    assert 'How you behave:\n- patience: low\n- verbosity: 2\n- topics: ["billing", "refunds"]' in prompt


def test_persona_prompt_without_traits_has_no_behaviour_section() -> None:
    prompt = persona_prompt(make_persona(), "A scenario.")

    assert "How you behave" not in prompt
    assert "\n\n\n" not in prompt


@pytest.mark.parametrize(
    ("code", "spoken"), [("he", "Hebrew"), ("es", "Spanish"), ("ar", "Arabic"), ("pt-BR", "pt-BR")]
)
def test_persona_is_told_to_speak_its_language_by_name_or_else_by_code(code: str, spoken: str) -> None:
    assert f"Speak only {spoken}." in persona_prompt(make_persona(language=code), "A scenario.")


def test_persona_is_told_to_hang_up_with_the_end_conversation_tool_it_is_given() -> None:
    prompt = persona_prompt(make_persona(), "A scenario.")

    assert "end_conversation" in prompt
    assert [tool.name for tool in persona_tools()] == ["end_conversation"]


# --- the agent's prompt and tools --------------------------------------------------------------------


def test_agent_gets_its_own_system_prompt_unchanged() -> None:
    raw = "  You are Acme's support bot.\n\nNever promise refunds.  \n"

    assert agent_prompt(make_agent(system_prompt=raw)) == raw


def test_agent_tools_are_its_declared_tools_then_end_call() -> None:
    tools: list[JsonValue] = [
        {"name": "lookup", "description": "Find an order.", "parameters": LOOKUP_PARAMS},
        {"name": "refund"},
    ]

    declared = agent_tools(make_agent(tools=tools))

    assert declared[0] == ToolSpec("lookup", "Find an order.", LOOKUP_PARAMS)
    assert declared[1] == ToolSpec("refund", "", EMPTY_OBJECT)
    assert [tool.name for tool in declared] == ["lookup", "refund", "end_call"]


def test_agent_without_tools_still_gets_end_call() -> None:
    assert [tool.name for tool in agent_tools(make_agent())] == ["end_call"]


def test_reference_shaped_tool_config_parameters_are_declared_to_the_agent() -> None:
    tool: dict[str, JsonValue] = {
        "name": "lookup",
        "type": "webhook",
        "config": {"parameters": LOOKUP_PARAMS},
    }

    assert agent_tools(make_agent(tools=[tool]))[0].parameters == LOOKUP_PARAMS


# --- the agent's view -----------------------------------------------------------------------------


def test_agent_sees_persona_as_user_itself_as_assistant_and_its_tool_results() -> None:
    messages = agent_view("You help.", CONVERSATION)

    assert messages == [
        ChatMessage("system", "You help."),
        ChatMessage("user", "Where is order A1?"),
        ChatMessage("assistant", "Let me check.", (LOOKUP,)),
        ChatMessage("tool", json.dumps({"status": "shipped"}), tool_call_id="c1"),
        ChatMessage("assistant", "It has shipped."),
        ChatMessage("user", "Thanks, bye!"),
    ]


def test_agent_sees_a_failed_tool_call_as_its_error() -> None:
    failed = tool_result(3, {"tool_call_id": "c1", "name": "lookup", "mocked": False, "error": "timed out"})

    messages = agent_view("You help.", [persona(1, "Hi"), agent(2, None, LOOKUP), failed])

    assert messages[-1] == ChatMessage("tool", '"timed out"', tool_call_id="c1")


def test_agent_does_not_see_a_wordless_persona_hang_up() -> None:
    transcript = [
        persona(1, "Hi"),
        agent(2, "Hello"),
        persona(3, None, ToolCallRecord("e", "end_conversation")),
    ]

    assert [m.role for m in agent_view("p", transcript)] == ["system", "user", "assistant"]


# --- the persona's view ---------------------------------------------------------------------------


def test_persona_sees_agent_words_as_user_and_itself_as_assistant_without_any_tool_traffic() -> None:
    messages = persona_view("You are Dana.", CONVERSATION)

    assert messages == [
        ChatMessage("system", "You are Dana."),
        ChatMessage("assistant", "Where is order A1?"),
        ChatMessage("user", "Let me check."),
        ChatMessage("user", "It has shipped."),
        ChatMessage("assistant", "Thanks, bye!"),
    ]
    assert all(not m.tool_calls and m.tool_call_id is None for m in messages)


def test_persona_opening_the_call_is_told_it_speaks_first() -> None:
    assert persona_view("You are Dana.", []) == [
        ChatMessage("system", "You are Dana."),
        ChatMessage("user", PERSONA_OPENS),
    ]


def test_persona_answering_a_greeting_sees_the_greeting_not_the_connect_cue() -> None:
    messages = persona_view("You are Dana.", [agent(1, "Hi, Acme support here.")])

    assert messages == [ChatMessage("system", "You are Dana."), ChatMessage("user", "Hi, Acme support here.")]


def test_persona_does_not_see_an_agent_turn_that_only_called_tools() -> None:
    transcript = [persona(1, "Where is A1?"), agent(2, None, LOOKUP)]

    assert [m.content for m in persona_view("p", transcript)] == ["p", "Where is A1?"]
