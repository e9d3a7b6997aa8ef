"""The deterministic `scripted` model (DESIGN.md §11): scripted personas, rule-driven agents, and
whitespace-token usage so pricing works on scripted runs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from schemas.agents import ScriptedRule
from service.domain.messages import ChatMessage
from service.domain.scripted import FALLBACK, agent_reply, persona_reply
from service.domain.transcript import ToolCallRecord

SCRIPT = ["Hi, my order is late.", "It is order A1.", "Thanks."]


def rule(**fields: JsonValue) -> ScriptedRule:
    return ScriptedRule.model_validate(fields)


def system(text: str = "You help.") -> ChatMessage:
    return ChatMessage("system", text)


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def assistant(text: str | None, *calls: ToolCallRecord) -> ChatMessage:
    return ChatMessage("assistant", text, calls)


# --- the scripted persona ------------------------------------------------------------------------


def test_persona_says_its_script_lines_in_order() -> None:
    opening = [system(), user("[The call has connected. You speak first.]")]
    second = [*opening, assistant(SCRIPT[0]), user("Sorry to hear that.")]
    third = [*second, assistant(SCRIPT[1]), user("Found it.")]

    said = [persona_reply(SCRIPT, history).text for history in (opening, second, third)]

    assert said == SCRIPT


def test_persona_hangs_up_with_end_conversation_after_its_last_line() -> None:
    history = [system(), user("Hello")]
    for line in SCRIPT:
        history += [assistant(line), user("Okay.")]

    reply = persona_reply(SCRIPT, history)

    assert reply.text is None
    assert [call.name for call in reply.tool_calls] == ["end_conversation"]


def test_persona_answering_a_greeting_starts_at_its_first_line() -> None:
    reply = persona_reply(SCRIPT, [system(), user("Hi, Acme support here.")])

    assert reply.text == SCRIPT[0]
    assert reply.tool_calls == ()


# --- the scripted agent ----------------------------------------------------------------------------


def test_agent_answers_with_the_first_rule_whose_pattern_matches() -> None:
    rules = [rule(when="refund", say="Refunds take 5 days."), rule(when="order", say="Which order?")]

    reply = agent_reply(rules, [system(), user("I want a refund for my order")])

    assert reply.text == "Refunds take 5 days."
    assert reply.tool_calls == ()


def test_agent_rule_matches_anywhere_in_the_message_regardless_of_case() -> None:
    rules = [rule(when="REFUND", say="Refunds take 5 days.")]

    assert (
        agent_reply(rules, [system(), user("hello, i'd like a Refund please")]).text == "Refunds take 5 days."
    )


def test_a_case_sensitive_group_in_a_rule_is_honoured() -> None:
    rules = [rule(when="(?-i:ACME)", say="That's us.")]

    assert agent_reply(rules, [system(), user("Is this ACME?")]).text == "That's us."
    assert agent_reply(rules, [system(), user("Is this acme?")]).text == FALLBACK


def test_agent_matches_only_the_persona_last_message() -> None:
    rules = [rule(when="refund", say="Refunds take 5 days.")]
    history = [system(), user("I want a refund"), assistant("Refunds take 5 days."), user("Thanks")]

    assert agent_reply(rules, history).text == FALLBACK


def test_agent_without_a_matching_rule_apologises() -> None:
    reply = agent_reply(
        [rule(when="refund", say="Refunds take 5 days.")], [system(), user("What time is it?")]
    )

    assert reply.text == "I'm sorry, I can't help with that."
    assert reply.tool_calls == ()


def test_agent_rule_calls_its_tool_with_its_arguments() -> None:
    rules = [rule(when="order", call_tool={"name": "lookup", "arguments": {"order_id": "A1"}})]

    reply = agent_reply(rules, [system(), user("Where is my order?")])

    assert reply.text is None
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("lookup", {"order_id": "A1"})]


def test_end_rule_says_its_words_then_calls_end_call_after_any_tool() -> None:
    rules = [rule(when="bye", say="Goodbye!", call_tool={"name": "log_call"}, end=True)]

    reply = agent_reply(rules, [system(), user("ok bye")])

    assert reply.text == "Goodbye!"
    assert [c.name for c in reply.tool_calls] == ["log_call", "end_call"]
    assert len({c.id for c in reply.tool_calls}) == 2


def test_tool_call_ids_differ_between_turns_of_one_conversation() -> None:
    rules = [rule(when="order", call_tool={"name": "lookup"})]
    first = [system(), user("order A1")]
    first_call = agent_reply(rules, first).tool_calls[0]
    second = [*first, assistant(None, first_call), ChatMessage("tool", "{}", tool_call_id=first_call.id)]
    second += [user("and order B2")]

    assert agent_reply(rules, second).tool_calls[0].id != first_call.id


def test_agent_ends_its_turn_silently_and_for_free_after_tool_results() -> None:
    lookup = ToolCallRecord("c1", "lookup")
    history = [
        system(),
        user("order A1"),
        assistant(None, lookup),
        ChatMessage("tool", "{}", tool_call_id="c1"),
    ]

    reply = agent_reply([rule(when=".*", say="Anything else?")], history)

    assert (reply.text, reply.tool_calls, reply.input_tokens, reply.output_tokens) == (None, (), 0, 0)


# --- token usage -----------------------------------------------------------------------------------


def test_usage_counts_whitespace_tokens_of_every_message_sent_and_of_the_reply() -> None:
    history = [system("You  help\tpeople."), user("I want\na refund"), assistant("Sure."), user("now please")]

    reply = agent_reply([rule(when="now", say="Refund issued, have a nice day.")], history)

    assert reply.input_tokens == 3 + 4 + 1 + 2
    assert reply.output_tokens == 6


def test_fallback_reply_is_billed_like_any_other() -> None:
    reply = agent_reply([], [system("Be brief."), user("Hello there")])

    assert reply.text == FALLBACK
    assert (reply.input_tokens, reply.output_tokens) == (4, 7)


def test_persona_lines_are_billed_by_their_whitespace_tokens() -> None:
    reply = persona_reply(["Hi, my order   is late."], [system("You are Dana."), user("Hello")])

    assert (reply.input_tokens, reply.output_tokens) == (4, 5)


def test_a_tool_call_without_words_still_produces_output_tokens() -> None:
    rules = [rule(when="order", call_tool={"name": "lookup", "arguments": {"order_id": "A1"}})]

    assert agent_reply(rules, [system(), user("my order")]).output_tokens > 0


@given(st.lists(st.text(max_size=40), max_size=6), st.text(min_size=1, max_size=40))
def test_input_tokens_are_the_sum_over_messages_of_their_whitespace_split(
    contents: list[str], last: str
) -> None:
    history = [user(text) for text in [*contents, last]]

    reply = agent_reply([], history)

    assert reply.input_tokens == sum(len(text.split()) for text in [*contents, last])
