"""The judge's pure parts: the messages it is sent, reading its vote, and the majority over samples."""

from __future__ import annotations

from typing import Literal

import pytest

from schemas.assertions import CustomLlmJudge
from service.domain.judging import Vote, decide, judge_messages, parse_vote
from service.domain.transcript import ToolCallRecord, TranscriptTurn

Samples = Literal[1, 3, 5, 7, 9]
PASS = Vote("pass", "polite at turn 2")
FAIL = Vote("fail", "rude at turn 4")


def judge(samples: Samples = 1, weight: float = 1.0) -> CustomLlmJudge:
    return CustomLlmJudge(
        type="custom_llm_judge", rubric="The agent is polite.", samples=samples, weight=weight
    )


# --- parse_vote --------------------------------------------------------------------------------


@pytest.mark.parametrize("verdict", ["pass", "fail"])
def test_a_verdict_and_a_reason_are_read(verdict: Literal["pass", "fail"]) -> None:
    vote = parse_vote(f'{{"verdict": "{verdict}", "reason": "see turn 3"}}')

    assert vote == Vote(verdict, "see turn 3")


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"verdict": "pass", "reason": "see turn 3"}\n```',
        '```\n{"verdict": "pass", "reason": "see turn 3"}\n```',
        '```json{"verdict": "pass", "reason": "see turn 3"}```',
        '  \n```json\n{"verdict": "pass", "reason": "see turn 3"}\n```\n  ',
        '\n  {"verdict": "pass", "reason": "see turn 3"}  \n',
    ],
)
def test_a_vote_inside_a_json_fence_or_whitespace_is_read(text: str) -> None:
    assert parse_vote(text) == Vote("pass", "see turn 3")


def test_an_empty_reason_is_still_a_reason() -> None:
    assert parse_vote('{"verdict": "fail", "reason": ""}') == Vote("fail", "")


def test_unicode_reasons_survive() -> None:
    vote = parse_vote('{"verdict": "pass", "reason": "אמר שלום בתור 2 👋"}')

    assert vote == Vote("pass", "אמר שלום בתור 2 👋")


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "pass",
        "The agent was polite, so pass.",
        '{"verdict": "pass", "reason": "x"',
        "{'verdict': 'pass', 'reason': 'x'}",
        "```json\n```",
        '["pass", "x"]',
        '"pass"',
        "42",
        "null",
        "true",
        '{"verdict": "maybe", "reason": "x"}',
        '{"verdict": "PASS", "reason": "x"}',
        '{"verdict": "passed", "reason": "x"}',
        '{"verdict": true, "reason": "x"}',
        '{"verdict": null, "reason": "x"}',
        '{"reason": "x"}',
        '{"verdict": "pass"}',
        '{"verdict": "pass", "reason": null}',
        '{"verdict": "pass", "reason": 5}',
        '{"verdict": "fail", "reason": ["x"]}',
        '{"verdict": "fail", "reason": {"text": "x"}}',
        "{}",
    ],
)
def test_anything_but_the_asked_for_json_is_no_vote(text: str | None) -> None:
    assert parse_vote(text) is None


# --- decide ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vote", "passed", "outcome"),
    [pytest.param(PASS, True, "passed", id="passes"), pytest.param(FAIL, False, "failed", id="fails")],
)
def test_one_sample_decides_alone(vote: Vote, passed: bool, outcome: str) -> None:
    result = decide(judge(1), [vote])

    assert result.passed is passed
    assert result.outcome == outcome
    assert result.reason == vote.reason
    assert result.agreement == "1/1"


def test_one_unreadable_sample_is_inconclusive() -> None:
    result = decide(judge(1), [None])

    assert result.passed is None
    assert result.outcome == "inconclusive"
    assert result.agreement == "0/1"
    assert result.reason is not None
    assert "could not decide" in result.reason


@pytest.mark.parametrize(
    ("samples", "votes", "passed", "agreement"),
    [
        (3, [PASS, PASS, PASS], True, "3/3"),
        (3, [PASS, FAIL, PASS], True, "2/3"),
        (3, [FAIL, PASS, FAIL], False, "2/3"),
        (3, [FAIL, FAIL, FAIL], False, "3/3"),
        (3, [PASS, None, PASS], True, "2/3"),
        (3, [None, FAIL, FAIL], False, "2/3"),
        (5, [PASS, PASS, PASS, FAIL, FAIL], True, "3/5"),
        (5, [FAIL, FAIL, PASS, FAIL, PASS], False, "3/5"),
        (5, [PASS, None, PASS, None, PASS], True, "3/5"),
        (5, [FAIL, FAIL, FAIL, FAIL, None], False, "4/5"),
        (5, [PASS, PASS, PASS, PASS, PASS], True, "5/5"),
    ],
)
def test_a_strict_majority_of_samples_decides(
    samples: Samples, votes: list[Vote | None], passed: bool, agreement: str
) -> None:
    result = decide(judge(samples), votes)

    assert result.passed is passed
    assert result.outcome == ("passed" if passed else "failed")
    assert result.agreement == agreement


@pytest.mark.parametrize(
    ("samples", "votes", "agreement", "detail"),
    [
        (3, [PASS, FAIL, None], "1/3", "1 pass, 1 fail, 1 without a usable answer"),
        (3, [PASS, None, None], "1/3", "1 pass, 0 fail, 2 without a usable answer"),
        (3, [None, None, None], "0/3", "0 pass, 0 fail, 3 without a usable answer"),
        (5, [PASS, PASS, FAIL, FAIL, None], "2/5", "2 pass, 2 fail, 1 without a usable answer"),
        (5, [PASS, PASS, FAIL, None, None], "2/5", "2 pass, 1 fail, 2 without a usable answer"),
        (5, [None, FAIL, None, FAIL, None], "2/5", "0 pass, 2 fail, 3 without a usable answer"),
    ],
)
def test_unreadable_samples_count_against_the_majority(
    samples: Samples, votes: list[Vote | None], agreement: str, detail: str
) -> None:
    result = decide(judge(samples), votes)

    assert result.passed is None
    assert result.outcome == "inconclusive"
    assert result.agreement == agreement
    assert result.reason == f"the judge could not decide ({detail})"


def test_the_reason_of_a_decision_is_the_first_agreeing_vote() -> None:
    votes: list[Vote | None] = [Vote("fail", "f1"), Vote("pass", "p1"), Vote("pass", "p2")]

    assert decide(judge(3), votes).reason == "p1"


def test_a_decision_echoes_the_assertion_and_its_weight() -> None:
    assertion = judge(3, weight=2.5)

    for votes in ([PASS, PASS, FAIL], [FAIL, FAIL, PASS], [PASS, FAIL, None]):
        result = decide(assertion, votes)
        assert result.assertion == assertion
        assert result.weight == 2.5


# --- judge_messages ----------------------------------------------------------------------------


def test_the_judge_gets_a_system_prompt_and_the_rubric_with_the_rendered_transcript() -> None:
    transcript = [
        TranscriptTurn(turn_number=1, role="persona", text="Where is my order?"),
        TranscriptTurn(
            turn_number=2,
            role="agent",
            text="Let me check.",
            tool_calls=(ToolCallRecord(id="c1", name="lookup_order", arguments={"order_id": "A1", "n": 2}),),
        ),
        TranscriptTurn(turn_number=3, role="tool_result", tool_result={"status": "shipped"}),
        TranscriptTurn(turn_number=4, role="agent", text="It shipped yesterday."),
    ]

    messages = judge_messages("The agent gives the order status.", transcript)

    assert [m["role"] for m in messages] == ["system", "user"]
    assert "verdict" in messages[0]["content"]
    user = messages[1]["content"]
    assert "The agent gives the order status." in user
    assert "[turn 1] persona: Where is my order?" in user
    assert "[turn 2] agent: Let me check." in user
    assert '[turn 2] agent called tool lookup_order with {"n": 2, "order_id": "A1"}' in user
    assert '[turn 3] tool_result: {"status": "shipped"}' in user
    assert "[turn 4] agent: It shipped yesterday." in user
    assert user.index("[turn 1]") < user.index("[turn 2]") < user.index("[turn 4]")


def test_the_rubric_comes_before_the_transcript() -> None:
    transcript = [TranscriptTurn(turn_number=1, role="agent", text="Hello")]

    user = judge_messages("Be polite.", transcript)[1]["content"]

    assert user.index("Be polite.") < user.index("[turn 1] agent: Hello")


def test_a_flow_event_is_shown_to_the_judge() -> None:
    transcript = [
        TranscriptTurn(
            turn_number=5, role="flow_event", flow_event={"type": "flow_node_entered", "step_id": "x"}
        )
    ]

    user = judge_messages("r", transcript)[1]["content"]

    assert '[turn 5] flow_event: {"step_id": "x", "type": "flow_node_entered"}' in user


def test_an_empty_transcript_is_shown_as_empty() -> None:
    user = judge_messages("Be polite.", [])[1]["content"]

    assert "Be polite." in user
    assert "(empty)" in user
