"""The LLM judge against a real local chat-completions server: votes, majorities, retries of
unusable answers, and inconclusive results when the judge cannot answer (DESIGN.md §7)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from consumers.judge import Judge
from consumers.llm.openai_compat import OpenAICompatibleProvider
from consumers.llm.providers import Providers
from schemas.assertions import CustomLlmJudge
from service.core.settings import ProviderConfig
from service.domain.judging import VERDICT_SCHEMA
from service.domain.transcript import ToolCallRecord, TranscriptTurn, render
from tests.support.fake_llm import FakeLLM, Reply, verdict

RUBRIC = "The agent confirms the order number before giving a delivery date."
TRANSCRIPT = (
    TranscriptTurn(turn_number=1, role="persona", text="Where is my order 42?"),
    TranscriptTurn(
        turn_number=2,
        role="agent",
        tool_calls=(ToolCallRecord(id="call_1", name="lookup_order", arguments={"order": 42}),),
    ),
    TranscriptTurn(turn_number=3, role="tool_result", tool_result={"status": "shipping"}),
    TranscriptTurn(turn_number=4, role="agent", text="Order 42 ships tomorrow."),
)
MALFORMED = Reply(text="I think it passes, mostly.")


@pytest.fixture
async def providers(llm: FakeLLM) -> AsyncIterator[Providers]:
    config = ProviderConfig(base_url=llm.base_url, timeout_s=5.0, max_retries=0)
    providers = Providers({"fake": OpenAICompatibleProvider(config, "sk-judge")})
    yield providers
    await providers.close()


@pytest.fixture
def judge(providers: Providers) -> Judge:
    return Judge(providers, default_model="fake:judge", attempts=3)


def judged(**fields: Any) -> CustomLlmJudge:
    return CustomLlmJudge(type="custom_llm_judge", rubric=RUBRIC, **fields)


async def test_single_pass_verdict_passes_with_the_judges_reason(judge: Judge, llm: FakeLLM) -> None:
    llm.script(Reply(text=json.dumps({"verdict": "pass", "reason": "Turn 4 confirms 42."}), input_tokens=250))

    judgement = await judge.judge(judged(), TRANSCRIPT)

    result = judgement.result
    assert (result.passed, result.outcome, result.agreement) == (True, "passed", "1/1")
    assert result.reason == "Turn 4 confirms 42."
    assert judgement.model == "fake:judge"
    [call] = judgement.calls
    assert (call.input_tokens, call.output_tokens) == (250, 7)


async def test_single_sample_is_asked_deterministically_with_the_verdict_schema(
    judge: Judge, llm: FakeLLM
) -> None:
    llm.script(verdict(passed=True))

    await judge.judge(judged(), TRANSCRIPT)

    [sent] = llm.requests
    assert sent["model"] == "judge"
    assert sent["temperature"] == 0
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == VERDICT_SCHEMA
    assert sent["response_format"]["json_schema"]["strict"] is True
    user = next(m["content"] for m in sent["messages"] if m["role"] == "user")
    assert RUBRIC in user
    assert render(TRANSCRIPT) in user
    assert "[turn 4] agent: Order 42 ships tomorrow." in user


async def test_single_fail_verdict_fails(judge: Judge, llm: FakeLLM) -> None:
    llm.script(verdict(passed=False, reason="No confirmation."))

    result = (await judge.judge(judged(), TRANSCRIPT)).result

    assert (result.passed, result.outcome, result.agreement, result.reason) == (
        False,
        "failed",
        "1/1",
        "No confirmation.",
    )


async def test_three_samples_take_the_majority(judge: Judge, llm: FakeLLM) -> None:
    llm.script(verdict(passed=True), verdict(passed=False), verdict(passed=True))

    judgement = await judge.judge(judged(samples=3), TRANSCRIPT)

    assert (judgement.result.passed, judgement.result.agreement) == (True, "2/3")
    assert len(judgement.calls) == 3
    assert len(llm.requests) == 3
    assert {r["temperature"] for r in llm.requests} == {0.7}


async def test_malformed_answer_is_asked_again_and_both_calls_are_billed(judge: Judge, llm: FakeLLM) -> None:
    llm.script(Reply(text="not json", input_tokens=100), verdict(passed=False, reason="Never confirmed."))

    judgement = await judge.judge(judged(), TRANSCRIPT)

    assert (judgement.result.passed, judgement.result.agreement) == (False, "1/1")
    assert judgement.result.reason == "Never confirmed."
    assert [c.input_tokens for c in judgement.calls] == [100, 12]
    assert len(llm.requests) == 2


async def test_judge_that_never_answers_usably_is_inconclusive_not_failed(judge: Judge, llm: FakeLLM) -> None:
    llm.responder = lambda _: MALFORMED

    judgement = await judge.judge(judged(samples=3), TRANSCRIPT)

    assert (judgement.result.passed, judgement.result.outcome) == (None, "inconclusive")
    assert len(judgement.calls) == 3 * 3  # `attempts` per sample, every one billed
    assert len(llm.requests) == 9


async def test_provider_that_is_down_makes_the_judge_inconclusive(judge: Judge, llm: FakeLLM) -> None:
    llm.responder = lambda _: Reply(status=500)

    judgement = await judge.judge(judged(), TRANSCRIPT)

    assert (judgement.result.passed, judgement.result.outcome) == (None, "inconclusive")
    assert judgement.calls == []
    assert len(llm.requests) == 3  # asked `attempts` times, never a completion to bill


async def test_assertion_model_overrides_the_default_judge_model(judge: Judge, llm: FakeLLM) -> None:
    llm.script(verdict(passed=True))

    judgement = await judge.judge(judged(model="fake:strict-judge"), TRANSCRIPT)

    assert judgement.model == "fake:strict-judge"
    assert [r["model"] for r in llm.requests] == ["strict-judge"]


async def test_split_vote_with_an_unusable_sample_is_inconclusive(judge: Judge, llm: FakeLLM) -> None:
    # Replies go out in arrival order: whichever samples get the verdicts stop asking, so the
    # third sample alone receives every malformed answer, whatever the interleaving.
    llm.script(verdict(passed=True), verdict(passed=False), MALFORMED, MALFORMED, MALFORMED)

    judgement = await judge.judge(judged(samples=3), TRANSCRIPT)

    assert (judgement.result.passed, judgement.result.outcome) == (None, "inconclusive")
    assert judgement.result.agreement == "1/3"
    assert len(judgement.calls) == 5
