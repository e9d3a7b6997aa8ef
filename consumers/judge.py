"""The LLM judge: asks the judge model `samples` times and turns the votes into a result.

Every call that returned is priced and billed, whether or not its answer was usable. An
unusable answer (malformed JSON, wrong shape) is asked again up to `judge_attempts` times; a
provider that stays down counts as no answer. Either way the assertion ends inconclusive rather
than failed when no majority is reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from consumers.llm.providers import ChatMessage, Completion, CompletionRequest, Providers
from schemas.assertions import CustomLlmJudge
from schemas.evaluation import AssertionResult
from service.core.errors import ProviderError
from service.core.logging import get_logger
from service.domain.judging import VERDICT_SCHEMA, Vote, decide, judge_messages, parse_vote
from service.domain.transcript import TranscriptTurn

log = get_logger("consumers.judge")


@dataclass(frozen=True)
class Judgement:
    result: AssertionResult
    calls: list[Completion]  # every completion received, for pricing
    model: str


class Judge:
    def __init__(self, providers: Providers, default_model: str, attempts: int) -> None:
        self._providers = providers
        self._default_model = default_model
        self._attempts = attempts

    async def judge(self, assertion: CustomLlmJudge, transcript: Sequence[TranscriptTurn]) -> Judgement:
        model = assertion.model or self._default_model
        messages = [
            ChatMessage(role="user" if m["role"] == "user" else "system", content=m["content"])
            for m in judge_messages(assertion.rubric, transcript)
        ]
        # One sample is asked deterministically; several are sampled so the majority means something.
        temperature = 0.0 if assertion.samples == 1 else 0.7
        request = CompletionRequest(
            model=model, messages=messages, temperature=temperature, json_schema=VERDICT_SCHEMA
        )
        samples = await asyncio.gather(*(self._sample(request) for _ in range(assertion.samples)))
        votes = [vote for vote, _ in samples]
        calls = [call for _, sample_calls in samples for call in sample_calls]
        return Judgement(decide(assertion, votes), calls, model)

    async def _sample(self, request: CompletionRequest) -> tuple[Vote | None, list[Completion]]:
        calls: list[Completion] = []
        for attempt in range(1, self._attempts + 1):
            try:
                completion = await self._providers.complete(request)
            except ProviderError as exc:
                log.warning(
                    "judge_call_failed", model=request.model, code=exc.code, attempt=attempt, error=str(exc)
                )
                continue
            calls.append(completion)
            vote = parse_vote(completion.text)
            if vote is not None:
                return vote, calls
            log.warning("judge_answer_unusable", model=request.model, attempt=attempt)
        return None, calls
