"""The turn loop's decisions (DESIGN.md §3, §6): who speaks next, and when and why a run stops."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from service.domain.conversation import (
    AnswerTools,
    Finish,
    Greet,
    Rules,
    Speak,
    next_step,
    pending_calls,
    spoken_turns,
    time_budget_ms,
)
from service.domain.transcript import ToolCallRecord, TranscriptTurn

# --- building blocks ---------------------------------------------------------------------------

BUDGET_MS = 60_000


def rules(*, max_turns: int = 20, agent_speaks_first: bool = False, greeting: str | None = None) -> Rules:
    return Rules(
        max_turns=max_turns, agent_speaks_first=agent_speaks_first, greeting=greeting, budget_ms=BUDGET_MS
    )


def call(name: str, call_id: str = "c1") -> ToolCallRecord:
    return ToolCallRecord(id=call_id, name=name)


def persona(turn: int, text: str | None, *calls: ToolCallRecord) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="persona", text=text, tool_calls=calls)


def agent(turn: int, text: str | None, *calls: ToolCallRecord) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="agent", text=text, tool_calls=calls)


def result(turn: int, call_id: str) -> TranscriptTurn:
    body: dict[str, JsonValue] = {"tool_call_id": call_id, "name": "lookup", "result": {"ok": True}}
    return TranscriptTurn(turn_number=turn, role="tool_result", tool_result=body)


# --- who opens -----------------------------------------------------------------------------------


def test_agent_with_greeting_and_speaks_first_opens_with_its_literal_greeting() -> None:
    step = next_step([], rules(agent_speaks_first=True, greeting="Hi, Acme here."), 0)

    assert step == Greet("Hi, Acme here.")


@pytest.mark.parametrize(
    ("speaks_first", "greeting"),
    [(False, "Hi, Acme here."), (True, None), (True, "")],
    ids=["greeting-but-not-first", "first-without-greeting", "first-with-empty-greeting"],
)
def test_persona_opens_unless_the_agent_has_a_greeting_and_speaks_first(
    speaks_first: bool, greeting: str | None
) -> None:
    assert next_step([], rules(agent_speaks_first=speaks_first, greeting=greeting), 0) == Speak("persona")


def test_persona_answers_the_greeting() -> None:
    step = next_step([agent(1, "Hi, Acme here.")], rules(agent_speaks_first=True, greeting="Hi"), 0)

    assert step == Speak("persona")


# --- taking turns --------------------------------------------------------------------------------


def test_agent_replies_to_the_persona_and_the_persona_to_the_agent() -> None:
    first = [persona(1, "I want a refund")]
    second = [*first, agent(2, "Sure, what is the order number?")]

    assert next_step(first, rules(), 0) == Speak("agent")
    assert next_step(second, rules(), 0) == Speak("persona")


def test_persona_goodbye_ends_without_an_agent_reply() -> None:
    transcript = [persona(1, "Hi"), agent(2, "Hello"), persona(3, "Thanks, bye!", call("end_conversation"))]

    assert next_step(transcript, rules(), 0) == Finish("persona_goodbye")


def test_agent_end_call_ends_the_run_as_agent_ended() -> None:
    transcript = [persona(1, "That's all"), agent(2, "Goodbye!", call("end_call"))]

    assert next_step(transcript, rules(), 0) == Finish("agent_ended")


def test_a_goodbye_on_the_last_allowed_turn_is_reported_as_goodbye_not_max_turns() -> None:
    transcript = [persona(1, "Hi"), agent(2, "Hello"), persona(3, "Bye", call("end_conversation"))]

    assert next_step(transcript, rules(max_turns=3), 0) == Finish("persona_goodbye")


# --- tool calls ------------------------------------------------------------------------------------


def test_agent_tool_calls_are_answered_before_anyone_speaks() -> None:
    lookup, refund = call("lookup", "c1"), call("refund", "c2")
    transcript = [persona(1, "Order A1"), agent(2, "Checking.", lookup, refund)]

    assert next_step(transcript, rules(), 0) == AnswerTools((lookup, refund))


def test_only_the_tool_calls_without_a_result_are_still_pending() -> None:
    lookup, refund = call("lookup", "c1"), call("refund", "c2")
    transcript = [persona(1, "Order A1"), agent(2, None, lookup, refund), result(3, "c1")]

    assert pending_calls(transcript) == (refund,)
    assert next_step(transcript, rules(), 0) == AnswerTools((refund,))


def test_calls_of_an_earlier_agent_turn_are_not_pending_again() -> None:
    transcript = [
        persona(1, "Order A1"),
        agent(2, None, call("lookup", "c1")),
        result(3, "c1"),
        agent(4, "Found it."),
        persona(5, "Great"),
    ]

    assert pending_calls(transcript) == ()


def test_agent_speaks_again_after_its_tool_results() -> None:
    transcript = [persona(1, "Order A1"), agent(2, None, call("lookup", "c1")), result(3, "c1")]

    assert next_step(transcript, rules(), 0) == Speak("agent", after_tools=True)


def test_persona_speaks_when_the_agent_passed_after_its_tool_results() -> None:
    transcript = [persona(1, "Order A1"), agent(2, "Checking.", call("lookup", "c1")), result(3, "c1")]

    assert next_step(transcript, rules(), 0, agent_passed=True) == Speak("persona")


def test_agent_passed_only_matters_right_after_tool_results() -> None:
    transcript = [persona(1, "Order A1")]

    assert next_step(transcript, rules(), 0, agent_passed=True) == Speak("agent")


def test_tool_calls_of_the_last_allowed_turn_still_get_their_results() -> None:
    lookup = call("lookup", "c1")
    transcript = [persona(1, "Order A1"), agent(2, None, lookup)]

    assert next_step(transcript, rules(max_turns=2), 0) == AnswerTools((lookup,))
    assert next_step([*transcript, result(3, "c1")], rules(max_turns=2), 0) == Finish("max_turns")


# --- limits --------------------------------------------------------------------------------------


def test_tool_results_do_not_count_towards_max_turns() -> None:
    transcript = [
        persona(1, "Order A1"),
        agent(2, None, call("lookup", "c1"), call("refund", "c2")),
        result(3, "c1"),
        result(4, "c2"),
    ]

    assert spoken_turns(transcript) == 2
    assert next_step(transcript, rules(max_turns=3), 0) == Speak("agent", after_tools=True)


def test_run_stops_at_max_turns_without_another_reply() -> None:
    transcript = [persona(1, "Hi"), agent(2, "Hello"), persona(3, "How are you?")]

    assert next_step(transcript, rules(max_turns=3), 0) == Finish("max_turns")
    assert next_step(transcript, rules(max_turns=4), 0) == Speak("agent")


def test_run_times_out_once_the_wall_clock_budget_is_spent() -> None:
    transcript = [persona(1, "Hi")]

    assert next_step(transcript, rules(), BUDGET_MS - 1) == Speak("agent")
    assert next_step(transcript, rules(), BUDGET_MS) == Finish("timeout")


def test_budget_spent_after_tool_results_times_out_instead_of_calling_the_agent() -> None:
    transcript = [persona(1, "Order A1"), agent(2, None, call("lookup", "c1")), result(3, "c1")]

    assert next_step(transcript, rules(), BUDGET_MS) == Finish("timeout")


# --- properties over arbitrary transcripts ---------------------------------------------------------

_names = st.sampled_from(["lookup", "refund", "end_call", "end_conversation"])


@st.composite
def transcripts(draw: st.DrawFn) -> list[TranscriptTurn]:
    turns: list[TranscriptTurn] = []
    for number in range(1, draw(st.integers(min_value=0, max_value=12)) + 1):
        role = draw(st.sampled_from(["persona", "agent", "tool_result"]))
        if role == "tool_result":
            turns.append(result(number, f"c{draw(st.integers(min_value=0, max_value=3))}"))
            continue
        names = draw(st.lists(_names, max_size=2))
        calls = tuple(call(name, f"c{i}") for i, name in enumerate(names))
        text = draw(st.sampled_from([None, "words"]))
        turns.append(TranscriptTurn(turn_number=number, role=role, text=text, tool_calls=calls))
    return turns


@given(transcripts(), st.integers(min_value=1, max_value=12), st.booleans())
def test_nobody_speaks_once_max_turns_is_reached(
    transcript: list[TranscriptTurn], max_turns: int, agent_passed: bool
) -> None:
    step = next_step(transcript, rules(max_turns=max_turns), 0, agent_passed=agent_passed)

    if spoken_turns(transcript) >= max_turns:
        assert not isinstance(step, Speak | Greet)


@given(transcripts().filter(bool), st.integers(min_value=BUDGET_MS, max_value=10 * BUDGET_MS), st.booleans())
def test_nobody_speaks_again_once_the_budget_is_spent(
    transcript: list[TranscriptTurn], elapsed_ms: int, agent_passed: bool
) -> None:
    step = next_step(transcript, rules(), elapsed_ms, agent_passed=agent_passed)

    assert not isinstance(step, Speak | Greet)


@given(transcripts())
def test_answered_tools_are_never_end_call_nor_already_answered(transcript: list[TranscriptTurn]) -> None:
    step = next_step(transcript, rules(), 0)

    if isinstance(step, AnswerTools):
        last_agent = max(i for i, t in enumerate(transcript) if t.role == "agent")
        since = transcript[last_agent + 1 :]
        answered = {str(t.tool_result.get("tool_call_id")) for t in since if t.tool_result}
        assert step.calls
        assert all(c in transcript[last_agent].tool_calls for c in step.calls)
        assert all(c.name != "end_call" and c.id not in answered for c in step.calls)


@pytest.mark.parametrize(
    ("agent_limit_s", "operator_limit_s", "budget_ms"),
    [(60, 600, 60_000), (3600, 600, 600_000), (None, 600, 600_000), (0, 90.5, 90_500)],
)
def test_the_time_budget_is_the_agents_limit_capped_by_the_operators(
    agent_limit_s: float | None, operator_limit_s: float, budget_ms: int
) -> None:
    assert time_budget_ms(agent_limit_s, operator_limit_s) == budget_ms
