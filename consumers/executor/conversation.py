"""The conversation engine: plays one claimed run, turn by turn, from its persisted transcript.

Each round: decide (a pure function of the transcript, `service.domain.conversation`) → act
(a model call, or answering tool calls; outside any transaction) → persist (one fenced
transaction: the new rows, priced, their `run.turn` events, and — when the conversation ends
with them or a cancel was requested — the run's end). Because every round starts from what is
persisted, a run resumed by another executor continues at the next turn boundary: a model call
in flight at a crash is simply made again, and its lost tokens are never billed.

A run whose cancel flag is set when it ends (at a turn commit, or at any other end) ends
`cancelled`. The wall-clock budget counts only time an executor owned the run (`active_ms`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from consumers.executor.persistence import Draft, RunWriter
from consumers.executor.tools import ToolCaller
from consumers.llm.providers import CompletionRequest, Providers
from schemas.runs import RunConfig
from service.core.clock import Clock
from service.core.errors import BudgetSpent, LeaseLost, ProviderError
from service.core.logging import get_logger
from service.core.settings import Settings
from service.db.claims import Lease
from service.db.runs import RunRow
from service.domain.conversation import (
    AnswerTools,
    Finish,
    Greet,
    Rules,
    Speak,
    Step,
    next_step,
    time_budget_ms,
)
from service.domain.lifecycle import Ending
from service.domain.prompts import agent_tools, agent_view, persona_tools, persona_view
from service.domain.transcript import TranscriptTurn
from service.runs.triggers import default_models

log = get_logger("consumers.executor.conversation")
T = TypeVar("T")


@dataclass(frozen=True)
class Engine:
    """What every conversation of an executor shares."""

    providers: Providers
    tools: ToolCaller
    writer: RunWriter
    settings: Settings
    clock: Clock


@dataclass(frozen=True)
class Setup:
    """A run's snapshot, as the engine plays it."""

    config: RunConfig
    agent_model: str
    persona_model: str
    rules: Rules


def setup_of(run: RunRow, settings: Settings) -> Setup:
    config = RunConfig.model_validate(run.config)
    agent = config.case.agent
    rules = Rules(
        max_turns=config.case.max_turns,
        agent_speaks_first=agent.agent_speaks_first,
        greeting=agent.greeting_message,
        budget_ms=time_budget_ms(agent.max_call_duration_secs, settings.run_timeout_s),
    )
    agent_default, persona_default = default_models(settings)  # for runs stored without models
    return Setup(
        config, run.agent_model or agent_default.model, run.persona_model or persona_default.model, rules
    )


class Conversation:
    def __init__(self, engine: Engine, run: RunRow, lease: Lease) -> None:
        self._engine = engine
        self._run = run
        self._lease = lease
        self._setup = setup_of(run, engine.settings)
        self._claimed_at = engine.clock.monotonic()

    async def play(self) -> None:
        """Play until the run ends or the lease is lost (then drop the run without writing)."""
        try:
            await self._play()
        except LeaseLost:
            log.warning("lease_lost", run_id=str(self._run.id), attempt=self._lease.attempt)

    async def _play(self) -> None:
        writer = self._engine.writer
        if self._run.cancel_requested_at is not None:
            await writer.end(self._lease, Ending("cancelled"), self._active_ms())
            return
        transcript = await writer.transcript(self._run.id)
        passed = False
        while True:
            step = next_step(transcript, self._setup.rules, self._active_ms(), agent_passed=passed)
            if isinstance(step, Finish):
                await writer.end(self._lease, Ending(step.reason), self._active_ms())
                return
            ending, drafts = await self._attempt(step, transcript)
            if ending is not None:
                await writer.end(self._lease, ending, self._active_ms())
                return
            passed = isinstance(step, Speak) and step.after_tools and not drafts
            if drafts:
                persisted = await self._persist(transcript, drafts)
                if persisted is None:
                    return
                transcript = persisted

    async def _attempt(
        self, step: Step, transcript: Sequence[TranscriptTurn]
    ) -> tuple[Ending | None, list[Draft]]:
        """Act within the budget; an ending instead when the budget runs out or a model fails."""
        try:
            return None, await self._within_budget(self._act(step, transcript))
        except BudgetSpent:
            return Ending("timeout"), []
        except ProviderError as exc:
            log.warning("model_call_failed", run_id=str(self._run.id), code=exc.code, error=str(exc))
            return Ending("error", str(exc), exc.code), []

    async def _persist(
        self, transcript: Sequence[TranscriptTurn], drafts: list[Draft]
    ) -> list[TranscriptTurn] | None:
        """Write the new rows; the run's end too if the conversation ends with them. Returns the
        transcript to continue from, or None once the run has ended."""
        first = len(transcript) + 1
        extended = [*transcript, *(d.as_turn(first + i) for i, d in enumerate(drafts))]
        after = next_step(extended, self._setup.rules, self._active_ms())
        ending = Ending(after.reason) if isinstance(after, Finish) else None
        ended = await self._engine.writer.persist(self._lease, first, drafts, ending, self._active_ms())
        return None if ended else extended

    async def _within_budget(self, work: Awaitable[T]) -> T:
        remaining_s = max(0.0, (self._setup.rules.budget_ms - self._active_ms()) / 1000)
        try:
            async with asyncio.timeout(remaining_s) as deadline:
                return await work
        except TimeoutError:
            if deadline.expired():
                raise BudgetSpent() from None
            raise

    async def _act(self, step: Step, transcript: Sequence[TranscriptTurn]) -> list[Draft]:
        if isinstance(step, Greet):
            return [Draft("agent", text=step.text)]
        if isinstance(step, AnswerTools):
            return await self._answer_tools(step)
        if isinstance(step, Speak) and step.who == "persona":
            return [await self._persona_says(transcript)]
        reply = await self._agent_says(transcript)
        if isinstance(step, Speak) and step.after_tools and reply.is_empty() and not reply.has_usage():
            return []  # the agent has nothing to add to its tool results: the persona speaks
        return [reply]

    async def _persona_says(self, transcript: Sequence[TranscriptTurn]) -> Draft:
        persona, model = self._setup.config.case.persona, self._setup.persona_model
        prompt = self._setup.config.prompts.persona or ""
        request = CompletionRequest(
            model=model,
            messages=persona_view(prompt, transcript),
            tools=persona_tools(),
            script=persona.script if model == "scripted" else None,
        )
        return Draft.from_completion("persona", model, await self._engine.providers.complete(request))

    async def _agent_says(self, transcript: Sequence[TranscriptTurn]) -> Draft:
        agent, model = self._setup.config.case.agent, self._setup.agent_model
        prompt = self._setup.config.prompts.agent or agent.system_prompt
        request = CompletionRequest(
            model=model,
            messages=agent_view(prompt, transcript),
            tools=agent_tools(agent),
            temperature=agent.temperature,
            rules=(agent.rules or []) if model == "scripted" else None,
        )
        return Draft.from_completion("agent", model, await self._engine.providers.complete(request))

    async def _answer_tools(self, step: AnswerTools) -> list[Draft]:
        case = self._setup.config.case
        answers = await asyncio.gather(
            *(
                self._engine.tools.answer(
                    call, case.agent.tools, case.tool_policy, case.tool_allowlist, self._run.id
                )
                for call in step.calls
            )
        )
        return [Draft("tool_result", tool_result=answer) for answer in answers]

    def _active_ms(self) -> int:
        owned_s = self._engine.clock.monotonic() - self._claimed_at
        return self._run.active_ms + int(owned_s * 1000)
