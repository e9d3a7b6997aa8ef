"""Scoring (DESIGN.md §7): every assertion type against a transcript, then the score and pass/fail."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from schemas.assertions import Assertion, CustomLlmJudge, MustCallTool, MustNotSay, MustReachNode, MustSay
from schemas.evaluation import AssertionResult
from service.domain.matching import json_equal, mismatches
from service.domain.scoring import (
    check,
    evaluate,
    evaluate_without_judge,
    failed,
    inconclusive,
    passed,
    summarise,
)
from service.domain.transcript import ToolCallRecord, TranscriptTurn

# --- building blocks ---------------------------------------------------------------------------


def agent(turn: int, text: str | None, *calls: ToolCallRecord) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="agent", text=text, tool_calls=calls)


def persona(turn: int, text: str) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="persona", text=text)


def tool_result(turn: int, result: dict[str, JsonValue], text: str | None = None) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="tool_result", text=text, tool_result=result)


def flow_event(turn: int, event: dict[str, JsonValue]) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="flow_event", flow_event=event)


def call(name: str, arguments: dict[str, JsonValue] | None = None, call_id: str = "c1") -> ToolCallRecord:
    if arguments is None:
        return ToolCallRecord(id=call_id, name=name)
    return ToolCallRecord(id=call_id, name=name, arguments=arguments)


def must_say(pattern: str, weight: float = 1.0) -> MustSay:
    return MustSay(type="must_say", pattern=pattern, weight=weight)


def must_not_say(pattern: str, weight: float = 1.0) -> MustNotSay:
    return MustNotSay(type="must_not_say", pattern=pattern, weight=weight)


def must_call(tool: str, args_match: dict[str, JsonValue] | None = None) -> MustCallTool:
    return MustCallTool(type="must_call_tool", tool_name=tool, args_match=args_match)


def must_reach(node_id: str) -> MustReachNode:
    return MustReachNode(type="must_reach_node", node_id=node_id)


def judge(rubric: str = "The agent is polite.", weight: float = 1.0) -> CustomLlmJudge:
    return CustomLlmJudge(type="custom_llm_judge", rubric=rubric, weight=weight)


def run(
    assertion: Assertion, transcript: list[TranscriptTurn], *, flow_agent: bool = False
) -> AssertionResult:
    return check(assertion, transcript, flow_agent=flow_agent)


# --- must_say / must_not_say -------------------------------------------------------------------


def test_must_say_passes_naming_the_first_agent_turn_that_matches() -> None:
    transcript = [
        persona(1, "I want a refund"),
        agent(2, "Let me check."),
        persona(3, "ok"),
        agent(7, "Your refund is on its way."),
        agent(9, "The refund was issued."),
    ]

    result = run(must_say("refund"), transcript)

    assert result.passed is True
    assert result.outcome == "passed"
    assert result.reason == "matched at turn 7"
    assert result.turn == 7  # the dashboard links the verdict to this turn


def test_must_say_fails_when_no_agent_message_matches() -> None:
    result = run(must_say("refund"), [persona(1, "refund please"), agent(2, "Goodbye.")])

    assert result.passed is False
    assert result.outcome == "failed"
    assert result.reason == "no agent message matches"
    assert result.turn is None


def test_must_say_fails_on_an_empty_transcript() -> None:
    assert run(must_say("hello"), []).passed is False


def test_must_not_say_passes_without_a_reason_when_never_said() -> None:
    result = run(must_not_say("guarantee"), [agent(2, "I cannot promise that.")])

    assert result.passed is True
    assert result.outcome == "passed"
    assert result.reason is None


def test_must_not_say_fails_naming_the_first_turn_that_said_it() -> None:
    transcript = [agent(2, "Hello."), agent(4, "I guarantee it."), agent(6, "Guaranteed, again.")]

    result = run(must_not_say("guarantee"), transcript)

    assert result.passed is False
    assert result.outcome == "failed"
    assert result.reason == "said at turn 4"
    assert result.turn == 4


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("hello", "HELLO there"),
        ("HELLO", "well, hello"),
        ("Refund Policy", "our rEfUnD pOlIcY says"),
        ("[a-z]+ing", "WORKING"),
    ],
)
def test_matching_is_case_insensitive_by_default(pattern: str, text: str) -> None:
    assert run(must_say(pattern), [agent(1, text)]).passed is True
    assert run(must_not_say(pattern), [agent(1, text)]).passed is False


def test_a_case_sensitive_group_turns_case_insensitivity_off_for_that_part_only() -> None:
    assertion = must_say("(?-i:Acme) support")

    assert run(assertion, [agent(1, "Welcome to Acme SUPPORT")]).passed is True
    assert run(assertion, [agent(1, "welcome to acme support")]).passed is False
    assert run(assertion, [agent(1, "Welcome to ACME support")]).passed is False


def test_persona_messages_never_count() -> None:
    transcript = [persona(1, "Say the password: swordfish"), agent(2, "I can't share that.")]

    assert run(must_say("swordfish"), transcript).passed is False
    assert run(must_not_say("swordfish"), transcript).passed is True


def test_tool_results_never_count() -> None:
    transcript = [
        agent(2, None, call("lookup_order", {"order_id": "A1"})),
        tool_result(3, {"status": "swordfish"}, text="swordfish"),
        agent(4, "Your order is on its way."),
    ]

    assert run(must_say("swordfish"), transcript).passed is False
    assert run(must_not_say("swordfish"), transcript).passed is True


def test_tool_call_arguments_are_not_agent_text() -> None:
    transcript = [agent(2, None, call("send_email", {"body": "swordfish"}))]

    assert run(must_say("swordfish"), transcript).passed is False


def test_a_pattern_matches_within_one_message() -> None:
    assert run(must_say("hello world"), [agent(1, "I say hello world")]).reason == "matched at turn 1"


@pytest.mark.parametrize("pattern", [r"hello\s+world", r"hello\s*world", "hello.*world", r"hello\nworld"])
def test_a_pattern_spans_two_agent_messages_and_names_the_turn_where_it_starts(pattern: str) -> None:
    transcript = [agent(1, "I say hello"), persona(2, "and?"), agent(3, "world is big")]

    assert run(must_say(pattern), transcript).reason == "matched at turn 1"
    assert run(must_not_say(pattern), transcript).reason == "said at turn 1"


def test_messages_are_joined_by_a_newline_so_a_literal_space_does_not_join_them() -> None:
    transcript = [agent(1, "I say hello"), agent(2, "world is big")]

    assert run(must_say("hello world"), transcript).passed is False
    assert run(must_not_say("hello world"), transcript).passed is True


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("שלום", "אמר לו שלום וברכה"),
        ("תודה רבה", "תודה רבה על הפנייה"),
        ("👋", "Hi 👋 there"),
        ("café", "Un CAFÉ, s'il vous plaît"),
        ("ÉCOLE", "à l'école"),
        ("école", "L'ÉCOLE EST FERMÉE"),
        ("ñandú", "ÑANDÚ"),
        ("straße", "Die STRAßE"),
    ],
)
def test_unicode_patterns_match_unicode_text_case_insensitively(pattern: str, text: str) -> None:
    assert run(must_say(pattern), [agent(3, text)]).reason == "matched at turn 3"


def test_an_accented_letter_is_not_its_unaccented_base() -> None:
    assert run(must_say("ecole"), [agent(1, "école")]).passed is False


def test_a_pattern_can_match_on_any_line_of_a_multi_line_message() -> None:
    text = "Thanks for calling.\nLet me look.\nYour refund is approved."

    assert run(must_say("refund is approved"), [agent(5, text)]).reason == "matched at turn 5"


def test_a_dot_crosses_a_newline_inside_a_message_as_it_does_between_messages() -> None:
    assert run(must_say("calling.+refund"), [agent(1, "Thanks for calling\nrefund approved")]).passed is True


def test_turning_the_s_flag_off_keeps_a_dot_within_a_line() -> None:
    assertion = must_say("(?-s:calling.+refund)")

    assert run(assertion, [agent(1, "Thanks for calling\nrefund approved")]).passed is False
    assert run(assertion, [agent(1, "Thanks for calling"), agent(2, "refund approved")]).passed is False
    assert run(assertion, [agent(1, "Thanks for calling, refund approved")]).passed is True


def test_the_m_flag_anchors_at_each_line() -> None:
    text = "First line\nrefund approved"

    assert run(must_say("^refund"), [agent(1, text)]).passed is False
    assert run(must_say("(?m)^refund"), [agent(1, text)]).passed is True


def test_without_the_m_flag_anchors_are_the_start_and_end_of_the_whole_transcript() -> None:
    transcript = [agent(1, "Hello."), agent(3, "Refund approved."), agent(5, "Goodbye.")]

    assert run(must_say("^hello"), transcript).reason == "matched at turn 1"
    assert run(must_say("^refund"), transcript).passed is False
    assert run(must_say("(?m)^refund"), transcript).reason == "matched at turn 3"
    assert run(must_say(r"approved\.$"), transcript).passed is False
    assert run(must_say(r"goodbye\.$"), transcript).reason == "matched at turn 5"


@pytest.mark.parametrize("empty", [None, ""])
def test_an_agent_turn_without_text_is_skipped(empty: str | None) -> None:
    transcript = [agent(2, empty, call("lookup_order")), persona(3, "ok?"), agent(4, "Done.")]

    # `.*` matches anything, even an empty string: the first agent turn WITH text is named.
    assert run(must_say(".*"), transcript).reason == "matched at turn 4"
    assert run(must_not_say(".*"), transcript).reason == "said at turn 4"


def test_must_not_say_passes_when_the_agent_only_called_tools() -> None:
    assert run(must_not_say(".*"), [agent(2, None, call("lookup_order"))]).passed is True


# --- must_call_tool ----------------------------------------------------------------------------


def test_must_call_tool_passes_at_the_first_call_with_that_name() -> None:
    transcript = [
        agent(2, None, call("greet")),
        agent(4, "Looking.", call("lookup_order", {"order_id": "A1"})),
        agent(6, None, call("lookup_order", {"order_id": "B2"})),
    ]

    result = run(must_call("lookup_order"), transcript)

    assert result.passed is True
    assert result.outcome == "passed"
    assert result.reason == "fired at turn 4"
    assert result.turn == 4


def test_a_later_call_in_the_same_turn_is_found() -> None:
    transcript = [agent(3, None, call("greet", call_id="a"), call("lookup_order", call_id="b"))]

    assert run(must_call("lookup_order"), transcript).reason == "fired at turn 3"


def test_must_call_tool_fails_naming_the_tool_when_never_called() -> None:
    transcript = [agent(2, "Hello.", call("greet")), tool_result(3, {"name": "lookup_order"})]

    result = run(must_call("lookup_order"), transcript)

    assert result.passed is False
    assert result.outcome == "failed"
    assert result.reason is not None
    assert "lookup_order" in result.reason
    assert "never called" in result.reason


def test_args_match_compares_only_the_given_keys() -> None:
    transcript = [agent(2, None, call("lookup_order", {"order_id": "A1", "verbose": True, "page": 3}))]

    assert run(must_call("lookup_order", {"order_id": "A1"}), transcript).passed is True


def test_args_match_fails_on_a_different_value_naming_the_key() -> None:
    transcript = [agent(3, None, call("lookup_order", {"order_id": "B2"}))]

    result = run(must_call("lookup_order", {"order_id": "A1"}), transcript)

    assert result.passed is False
    assert result.reason is not None
    assert "turn 3" in result.reason
    assert "order_id" in result.reason
    assert "B2" in result.reason
    assert "A1" in result.reason


def test_args_match_fails_on_a_missing_key_naming_it() -> None:
    transcript = [agent(3, None, call("lookup_order", {"email": "a@example.com"}))]

    result = run(must_call("lookup_order", {"order_id": "A1"}), transcript)

    assert result.passed is False
    assert result.reason is not None
    assert "order_id is missing" in result.reason


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1, "c": [1, 2]}}, True),
        ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, False),  # nested objects need the same keys
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, False),
        ({"a": [1, 2]}, {"a": [2, 1]}, False),  # order matters in arrays
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1}]}, True),
        ({"a": [{"x": 1}]}, {"a": [{"x": 2}]}, False),
        ({"a": 1}, {"a": 1.0}, True),  # numbers compare by value
        ({"a": 2.5}, {"a": 2.5}, True),
        ({"a": True}, {"a": 1}, False),  # booleans are never numbers
        ({"a": 1}, {"a": True}, False),
        ({"a": False}, {"a": 0}, False),
        ({"a": "1"}, {"a": 1}, False),  # strings are never numbers
        ({"a": 1}, {"a": "1"}, False),
        ({"a": None}, {"a": None}, True),
        ({"a": None}, {}, False),
        ({"a": []}, {"a": {}}, False),
    ],
)
def test_args_match_is_deep_json_equality(
    expected: dict[str, JsonValue], actual: dict[str, JsonValue], matches: bool
) -> None:
    transcript = [agent(2, None, call("t", actual))]

    assert run(must_call("t", expected), transcript).passed is matches


@pytest.mark.parametrize("value", ["A1", "", 0, False, [], {}, 0.0])
def test_present_accepts_any_non_null_value(value: JsonValue) -> None:
    transcript = [agent(2, None, call("lookup_order", {"order_id": value}))]

    assert run(must_call("lookup_order", {"order_id": "$present"}), transcript).passed is True


@pytest.mark.parametrize("arguments", [{"order_id": None}, {}, {"other": "A1"}])
def test_present_fails_when_the_key_is_null_or_missing(arguments: dict[str, JsonValue]) -> None:
    transcript = [agent(2, None, call("lookup_order", arguments))]

    result = run(must_call("lookup_order", {"order_id": "$present"}), transcript)

    assert result.passed is False
    assert result.reason is not None
    assert "order_id is missing" in result.reason


def test_a_call_without_arguments_passes_when_there_is_no_args_match() -> None:
    assert run(must_call("hang_up"), [agent(5, None, call("hang_up"))]).reason == "fired at turn 5"


def test_a_call_without_arguments_fails_an_args_match_naming_the_missing_key() -> None:
    result = run(must_call("hang_up", {"reason": "$present"}), [agent(5, None, call("hang_up"))])

    assert result.passed is False
    assert result.reason is not None
    assert "reason is missing" in result.reason


def test_any_one_matching_call_passes_naming_its_turn() -> None:
    transcript = [
        agent(2, None, call("lookup_order", {"order_id": "B2"})),
        agent(4, None, call("lookup_order", {"order_id": "A1"})),
        agent(6, None, call("lookup_order", {"order_id": "C3"})),
    ]

    result = run(must_call("lookup_order", {"order_id": "A1"}), transcript)

    assert result.passed is True
    assert result.reason == "fired at turn 4"


def test_when_no_call_matches_the_reason_says_which_key_differed() -> None:
    transcript = [
        agent(2, None, call("lookup_order", {"order_id": "A1", "region": "eu"})),
        agent(4, None, call("lookup_order", {"order_id": "A1", "region": "us"})),
    ]

    result = run(must_call("lookup_order", {"order_id": "A1", "region": "apac"}), transcript)

    assert result.passed is False
    assert result.outcome == "failed"
    assert result.reason is not None
    assert "region" in result.reason
    assert "order_id" not in result.reason


def test_calls_to_other_tools_do_not_satisfy_args_match() -> None:
    transcript = [agent(2, None, call("cancel_order", {"order_id": "A1"}))]

    assert run(must_call("lookup_order", {"order_id": "A1"}), transcript).passed is False


# --- matching, directly ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual", "equal"),
    [
        (1, 1, True),
        (1, 1.0, True),
        (1.0, 1, True),
        (0, -0.0, True),
        (1, 2, False),
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        (False, 0, False),
        (0.0, False, False),
        ("1", 1, False),
        (1, "1", False),
        ("a", "a", True),
        ("a", "A", False),
        (None, None, True),
        (None, 0, False),
        (None, "", False),
        ([], [], True),
        ([1, 2], [1, 2], True),
        ([1, 2], [2, 1], False),
        ([1], [1, 1], False),
        ([1, [2, 3]], [1.0, [2.0, 3]], True),
        ({}, {}, True),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ({"a": {"b": [True]}}, {"a": {"b": [1]}}, False),
        ([], {}, False),
        ({}, None, False),
        ("$present", "x", False),
    ],
)
def test_json_equal(expected: JsonValue, actual: JsonValue, equal: bool) -> None:
    assert json_equal(expected, actual) is equal


def test_mismatches_is_empty_when_the_given_keys_match() -> None:
    assert mismatches({"a": 1, "b": "$present"}, {"a": 1.0, "b": "x", "extra": None}) == []


def test_mismatches_is_empty_for_an_empty_expectation() -> None:
    assert mismatches({}, {"anything": 1}) == []


def test_mismatches_gives_one_phrase_per_key_in_the_given_order() -> None:
    problems = mismatches(
        {"a": 1, "b": "$present", "c": "$present", "d": [1, 2]},
        {"a": 2, "c": None, "d": [2, 1]},
    )

    assert problems == [
        "a is 2, expected 1",
        "b is missing",
        "c is missing",
        "d is [2, 1], expected [1, 2]",
    ]


def test_mismatches_shortens_long_values() -> None:
    (problem,) = mismatches({"a": "x"}, {"a": "y" * 200})

    assert problem.startswith("a is 'yyy")
    assert problem.endswith("..., expected 'x'")
    assert len(problem) < 100


# --- must_reach_node ---------------------------------------------------------------------------


def test_must_reach_node_fails_on_a_prompt_agent_saying_it_needs_a_flow_agent() -> None:
    transcript = [flow_event(2, {"type": "flow_node_entered", "step_id": "checkout"})]

    result = run(must_reach("checkout"), transcript, flow_agent=False)

    assert result.passed is False
    assert result.outcome == "failed"
    assert result.reason is not None
    assert "flow agent" in result.reason


def test_must_reach_node_passes_when_the_node_was_entered_naming_the_turn() -> None:
    transcript = [
        persona(1, "hi"),
        flow_event(2, {"type": "flow_node_entered", "step_id": "greeting"}),
        agent(3, "Hello"),
        flow_event(4, {"type": "flow_node_entered", "step_id": "checkout"}),
        flow_event(6, {"type": "flow_node_entered", "step_id": "checkout"}),
    ]

    result = run(must_reach("checkout"), transcript, flow_agent=True)

    assert result.passed is True
    assert result.outcome == "passed"
    assert result.reason is not None
    assert "turn 4" in result.reason


@pytest.mark.parametrize(
    "event",
    [
        {"type": "flow_node_entered", "step_id": "greeting"},
        {"type": "flow_node_exited", "step_id": "checkout"},
        {"type": "flow_node_entered"},
        {"step_id": "checkout"},
        {"type": "flow_node_entered", "step_id": "CHECKOUT"},
    ],
)
def test_must_reach_node_fails_on_a_flow_agent_that_never_entered_the_node(
    event: dict[str, JsonValue],
) -> None:
    result = run(must_reach("checkout"), [flow_event(2, event), agent(3, "checkout")], flow_agent=True)

    assert result.passed is False
    assert result.reason is not None
    assert "checkout" in result.reason


def test_must_reach_node_fails_on_a_flow_agent_without_flow_events() -> None:
    assert run(must_reach("checkout"), [agent(1, "Hi")], flow_agent=True).passed is False


# --- custom_llm_judge --------------------------------------------------------------------------


def test_check_refuses_a_judge_assertion() -> None:
    with pytest.raises(ValueError, match="custom_llm_judge"):
        check(judge(), [agent(1, "Hi")], flow_agent=False)


def test_evaluate_takes_judge_results_from_the_judged_mapping_by_criterion_index() -> None:
    first, second = judge("polite"), judge("concise", weight=3.0)
    criteria: list[Assertion] = [must_say("hello"), first, must_say("bye"), second]
    judged = {1: passed(first, "polite at turn 2"), 3: failed(second, "rambled at turn 4")}

    evaluation = evaluate(criteria, [agent(2, "hello")], judged, pass_threshold=50, flow_agent=False)

    assert evaluation.results[1] == judged[1]
    assert evaluation.results[3] == judged[3]
    assert evaluation.results[0].passed is True
    assert evaluation.results[2].passed is False
    assert evaluation.score == pytest.approx(2 / 6 * 100)


def test_an_inconclusive_judge_makes_the_evaluation_inconclusive() -> None:
    criterion = judge()
    criteria: list[Assertion] = [must_say("hello"), criterion]
    judged = {1: inconclusive(criterion, "the judge could not decide", "1/3")}

    evaluation = evaluate(criteria, [agent(1, "hello")], judged, pass_threshold=50, flow_agent=False)

    assert evaluation.inconclusive is True
    assert evaluation.pass_fail is None
    assert evaluation.score == 100.0


# --- score and pass/fail -----------------------------------------------------------------------


def test_no_criteria_score_100_and_pass() -> None:
    evaluation = evaluate([], [agent(1, "hi")], {}, pass_threshold=100, flow_agent=False)

    assert evaluation.score == 100.0
    assert evaluation.pass_fail is True
    assert evaluation.inconclusive is False
    assert evaluation.results == []


def test_summarise_of_no_results_scores_100() -> None:
    evaluation = summarise([], 100)

    assert (evaluation.score, evaluation.pass_fail, evaluation.inconclusive) == (100.0, True, False)


def test_the_score_is_the_weighted_share_of_passed_criteria() -> None:
    criteria: list[Assertion] = [must_say("hello", 1), must_say("refund", 2), must_say("bye", 1)]

    evaluation = evaluate(
        criteria, [agent(1, "hello"), agent(3, "bye")], {}, pass_threshold=70, flow_agent=False
    )

    assert evaluation.score == 50.0
    assert evaluation.pass_fail is False
    assert evaluation.inconclusive is False


def test_all_passing_scores_100_and_all_failing_scores_0() -> None:
    criteria: list[Assertion] = [must_say("hello", 2.5), must_not_say("bye", 0.5)]

    all_pass = evaluate(criteria, [agent(1, "hello")], {}, pass_threshold=100, flow_agent=False)
    all_fail = evaluate(criteria, [agent(1, "bye")], {}, pass_threshold=1, flow_agent=False)

    assert (all_pass.score, all_pass.pass_fail) == (100.0, True)
    assert (all_fail.score, all_fail.pass_fail) == (0.0, False)


@pytest.mark.parametrize(
    ("threshold", "pass_fail"), [(0.0, True), (49.99, True), (50.0, True), (50.01, False), (100.0, False)]
)
def test_the_pass_threshold_is_inclusive(threshold: float, pass_fail: bool) -> None:
    criteria: list[Assertion] = [must_say("hello"), must_say("refund")]

    evaluation = evaluate(criteria, [agent(1, "hello")], {}, pass_threshold=threshold, flow_agent=False)

    assert evaluation.score == 50.0
    assert evaluation.pass_fail is pass_fail


def test_a_score_of_100_passes_a_threshold_of_100() -> None:
    evaluation = summarise([passed(must_say("a", 0.1), None), passed(must_say("b", 0.2), None)], 100)

    assert evaluation.score == 100.0
    assert evaluation.pass_fail is True


def test_any_inconclusive_result_leaves_pass_fail_null_and_scores_the_conclusive_ones() -> None:
    results = [
        passed(must_say("a", 1), "matched at turn 1"),
        inconclusive(judge(weight=5), "the judge could not decide"),
        failed(must_say("b", 3), "no agent message matches"),
    ]

    evaluation = summarise(results, 0)

    assert evaluation.score == 25.0
    assert evaluation.pass_fail is None
    assert evaluation.inconclusive is True


def test_all_inconclusive_results_have_no_score() -> None:
    results = [inconclusive(judge(), "no answer"), inconclusive(judge(weight=2), "no answer")]

    evaluation = summarise(results, 0)

    assert evaluation.score is None
    assert evaluation.pass_fail is None
    assert evaluation.inconclusive is True


def test_results_keep_the_criteria_order_and_echo_each_assertion_and_weight() -> None:
    criteria: list[Assertion] = [
        must_reach("checkout"),
        must_not_say("guarantee", 4),
        must_call("lookup_order", {"order_id": "$present"}),
        must_say("hello", 0.5),
    ]
    transcript = [agent(1, "hello", call("lookup_order", {"order_id": "A1"}))]

    evaluation = evaluate(criteria, transcript, {}, pass_threshold=50, flow_agent=False)

    assert [r.assertion for r in evaluation.results] == criteria
    assert [r.weight for r in evaluation.results] == [1.0, 4.0, 1.0, 0.5]
    assert [r.outcome for r in evaluation.results] == ["failed", "passed", "passed", "passed"]


# --- properties --------------------------------------------------------------------------------

WORDS = ("hello", "refund", "bye", "order", "école", "שלום")
TOOLS = ("lookup_order", "hang_up", "transfer")
NODES = ("greeting", "checkout", "done")
weights = st.sampled_from([0.5, 1.0, 2.0, 3.0, 1000.0])
arguments = st.dictionaries(
    st.sampled_from(["order_id", "region"]), st.one_of(st.none(), st.integers(0, 2), st.sampled_from(WORDS))
)
assertions: st.SearchStrategy[Assertion] = st.one_of(
    st.builds(MustSay, type=st.just("must_say"), pattern=st.sampled_from(WORDS), weight=weights),
    st.builds(MustNotSay, type=st.just("must_not_say"), pattern=st.sampled_from(WORDS), weight=weights),
    st.builds(
        MustCallTool,
        type=st.just("must_call_tool"),
        tool_name=st.sampled_from(TOOLS),
        args_match=st.one_of(st.none(), arguments),
        weight=weights,
    ),
    st.builds(MustReachNode, type=st.just("must_reach_node"), node_id=st.sampled_from(NODES), weight=weights),
)


@st.composite
def transcripts(draw: st.DrawFn) -> list[TranscriptTurn]:
    turns: list[TranscriptTurn] = []
    for number in range(1, draw(st.integers(0, 8)) + 1):
        role = draw(st.sampled_from(["persona", "agent", "tool_result", "flow_event"]))
        text = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=3))) or None
        if role == "agent":
            calls = draw(st.lists(st.builds(call, st.sampled_from(TOOLS), arguments), max_size=2))
            turns.append(agent(number, text, *calls))
        elif role == "flow_event":
            turns.append(
                flow_event(number, {"type": "flow_node_entered", "step_id": draw(st.sampled_from(NODES))})
            )
        elif role == "tool_result":
            turns.append(tool_result(number, {"ok": True}, text))
        else:
            turns.append(persona(number, text or ""))
    return turns


@given(
    st.lists(assertions, max_size=6),
    transcripts(),
    st.floats(0, 100),
    st.booleans(),
)
def test_evaluation_is_deterministic_and_the_score_stays_within_0_and_100(
    criteria: list[Assertion], transcript: list[TranscriptTurn], threshold: float, flow_agent: bool
) -> None:
    first = evaluate(criteria, transcript, {}, pass_threshold=threshold, flow_agent=flow_agent)
    second = evaluate(criteria, transcript, {}, pass_threshold=threshold, flow_agent=flow_agent)

    assert first == second
    assert first.model_dump(mode="json") == second.model_dump(mode="json")
    assert first.score is not None
    assert 0 <= first.score <= 100
    assert first.inconclusive is False
    assert first.pass_fail is (first.score >= threshold)
    assert [r.assertion for r in first.results] == criteria


def test_without_a_judge_criterion_the_verdict_is_known_when_the_conversation_ends() -> None:
    transcript = [persona(1, "hi"), agent(2, "Your refund is on its way")]
    criteria: list[Assertion] = [must_say("refund"), must_not_say("sorry")]
    found = evaluate_without_judge(criteria, transcript, pass_threshold=80, flow_agent=False)
    assert found == evaluate(criteria, transcript, {}, pass_threshold=80, flow_agent=False)
    assert found is not None
    assert (found.score, found.pass_fail) == (100.0, True)
    assert (
        evaluate_without_judge([*criteria, judge()], transcript, pass_threshold=80, flow_agent=False) is None
    )
