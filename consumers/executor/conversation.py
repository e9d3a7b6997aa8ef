"""The conversation engine: plays one claimed run, turn by turn, from its persisted transcript.

Each round: decide (a pure function of the transcript, `service.domain.conversation`) → act
(a model call, or answering tool calls; outside any transaction) → persist (one fenced
transaction: the new rows, priced, their `run.turn` events, and — when the conversation ends
with them or a cancel was requested — the run's end). Because every round starts from what is
persisted, a run resumed by another executor continues at the next turn boundary: a model call
in flight at a crash is simply made again, and its lost tokens are never billed.

A run whose cancel flag is set when it ends (at a turn commit, or at any other end) ends
`cancelled`. A conversation that completes is judged here when no criterion needs the LLM judge,
so its end also scores and bills it (`consumers.executor.persistence`). The wall-clock budget
counts only time an executor owned the run (`active_ms`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from consumers.executor.drafts import Draft
from consumers.executor.flow import FlowActor, FlowRun
from consumers.executor.http_agent import HttpAgentCaller
from consumers.executor.persistence import RunWriter
from consumers.executor.setup import setup_of
from consumers.executor.tools import ToolCaller
from consumers.llm.providers import CompletionRequest, Providers
from schemas.evaluation import Evaluation
from service.core.clock import Clock
from service.core.errors import BudgetSpent, LeaseLost, ProviderError
from service.core.logging import get_logger
from service.core.settings import Settings
from service.db.claims import Lease, Tenure
from service.db.runs import RunRow
from service.domain.conversation import AnswerTools, Finish, Speak
from service.domain.flow_runtime import Evaluate, Fire, FlowStep, Instructed
from service.domain.lifecycle import Ending, needs_scoring
from service.domain.prompts import agent_tools, agent_view, persona_tools, persona_view
from service.domain.scoring import evaluate_without_judge
from service.domain.transcript import TranscriptTurn

log = get_logger("consumers.executor.conversation")
T = TypeVar("T")
MAX_FOLDED = 20  # steps without I/O joined to one round (a flow entering node after node)


@dataclass(frozen=True)
class Engine:
    """What every conversation of an executor shares."""

    providers: Providers
    tools: ToolCaller
    http_agents: HttpAgentCaller
    writer: RunWriter
    settings: Settings
    clock: Clock


class Conversation:
    def __init__(self, engine: Engine, run: RunRow, lease: Lease) -> None:
        self._engine = engine
        self._run = run
        self._lease = lease
        self._setup = setup_of(run, engine.settings)
        self._claimed_at = engine.clock.monotonic()
        self._flow = self._flow_actor()
        # Only a claim lets turns be written, so the first play of a first claim starts empty.
        self._may_have_turns = run.attempt > 1

    def _flow_actor(self) -> FlowActor | None:
        setup = self._setup
        if setup.graph is None:
            return None
        prompt = setup.config.prompts.agent or setup.config.case.agent.system_prompt
        run = FlowRun(setup.graph, setup.config.case, setup.agent_model, prompt, self._run.id)
        return FlowActor(self._engine.providers, self._engine.tools, self._engine.clock, run)

    async def play(self) -> None:
        """Play until the run ends. Raises `LeaseLost`, having written nothing more, once the run
        is no longer under this lease (another executor re-claimed it, or it was swept); a run
        found ended under it (an end whose commit was not acknowledged) was not lost."""
        try:
            await self._play()
        except LeaseLost:
            if await self._engine.writer.tenure(self._lease) is not Tenure.ENDED:
                raise
            log.info("run_already_ended", run_id=str(self._run.id), attempt=self._lease.attempt)

    async def _play(self) -> None:
        writer = self._engine.writer
        if self._run.cancel_requested_at is not None:
            await writer.end(self._lease, Ending("cancelled"), self._active_ms())
            return
        if self._setup.flow_problem is not None:
            failed = Ending("error", self._setup.flow_problem, "FLOW_INVALID")
            await writer.end(self._lease, failed, self._active_ms())
            return
        transcript = await writer.transcript(self._run.id) if self._may_have_turns else []
        self._may_have_turns = True  # played again (after an outage): read what did commit
        passed = False
        while True:
            step = self._setup.decide(transcript, self._active_ms(), agent_passed=passed)
            if isinstance(step, Finish):
                finished = _ending(step)
                await writer.end(
                    self._lease, finished, self._active_ms(), self._verdict(finished, transcript)
                )
                return
            ending, drafts, passed = await self._round(step, transcript)
            if ending is not None and not drafts:
                await writer.end(self._lease, ending, self._active_ms(), self._verdict(ending, transcript))
                return
            if drafts:
                drafts, ending = await self._folded(transcript, drafts, ending)
                persisted = await self._persist(transcript, drafts, ending)
                if persisted is None:
                    return
                transcript = persisted

    async def _round(
        self, step: FlowStep, transcript: Sequence[TranscriptTurn]
    ) -> tuple[Ending | None, list[Draft], bool]:
        """Act on `step`; in a flow, go on (an evaluation, entering nodes, firing a tool, the
        reply, the caller's opening line) until someone has spoken, so a caller message and the
        agent's answer to it are two commits, not four, as for any agent. The ending (if a model
        failed or the budget ran out), the round's rows, and whether the agent passed (nothing to
        add to tool results)."""
        ending, drafts = await self._attempt(step, transcript)
        passed = isinstance(step, Speak) and step.after_tools and not drafts
        for _ in range(MAX_FOLDED if self._flow is not None else 0):
            if ending is not None or any(_spoken(d) for d in drafts):
                break
            extended = _extended(transcript, drafts)
            step = self._setup.decide(extended, self._active_ms(), agent_passed=passed)
            if isinstance(step, Finish) or (passed and isinstance(step, Speak) and step.who == "persona"):
                break
            ending, more = await self._attempt(step, extended)
            passed = isinstance(step, Speak) and step.after_tools and not more
            drafts += more
        return ending, drafts, passed

    async def _folded(
        self, transcript: Sequence[TranscriptTurn], drafts: list[Draft], ending: Ending | None
    ) -> tuple[list[Draft], Ending | None]:
        """The round's rows plus those of the steps after it that need no I/O (entering a flow
        node, a literal line, a line of the `scripted` model when it simulates no latency): one
        commit instead of one per row. The ending, if one of those steps ended the run."""
        drafts = list(drafts)
        for _ in range(MAX_FOLDED if ending is None else 0):
            extended = _extended(transcript, drafts)
            step = self._setup.decide(extended, self._active_ms())
            draft = self._setup.said_without_io(step)
            if draft is not None:
                drafts.append(draft)
                continue
            if not self._setup.answers_at_once(step, self._engine.settings.scripted_latency_s):
                break
            ending, more = await self._attempt(step, extended)
            drafts += more
            if ending is not None or not more:
                break
        return drafts, ending

    async def _attempt(
        self, step: FlowStep, transcript: Sequence[TranscriptTurn]
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
        self, transcript: Sequence[TranscriptTurn], drafts: list[Draft], ending: Ending | None = None
    ) -> list[TranscriptTurn] | None:
        """Write the new rows; the run's end too if `ending` is given or the conversation ends with
        them. Returns the transcript to continue from, or None once the run has ended."""
        first = len(transcript) + 1
        extended = _extended(transcript, drafts)
        if ending is None:
            after = self._setup.decide(extended, self._active_ms())
            ending = _ending(after) if isinstance(after, Finish) else None
        verdict = None if ending is None else self._verdict(ending, extended)
        ended = await self._engine.writer.persist(
            self._lease, first, drafts, ending, self._active_ms(), verdict=verdict
        )
        return None if ended else extended

    def _verdict(self, ending: Ending, transcript: Sequence[TranscriptTurn]) -> Evaluation | None:
        """The verdict on `transcript` if the run completes with it and no judge is needed (the
        writer then settles the run in place); None leaves it to the scorer role, where a verdict
        that cannot be reached goes to the dead-letter topic instead of failing the conversation."""
        if not needs_scoring(ending.status, False):
            return None
        case = self._setup.config.case
        try:
            return evaluate_without_judge(
                case.success_criteria,
                transcript,
                pass_threshold=case.pass_threshold,
                flow_agent=case.agent.type == "flow",
            )
        except Exception:
            log.exception("verdict_deferred")
            return None

    async def _within_budget(self, work: Awaitable[T]) -> T:
        remaining_s = max(0.0, (self._setup.rules.budget_ms - self._active_ms()) / 1000)
        try:
            async with asyncio.timeout(remaining_s) as deadline:
                return await work
        except TimeoutError:
            if deadline.expired():
                raise BudgetSpent() from None
            raise

    async def _act(self, step: FlowStep, transcript: Sequence[TranscriptTurn]) -> list[Draft]:
        without_io = self._setup.said_without_io(step)
        if without_io is not None:
            return [without_io]
        if isinstance(step, Evaluate | Instructed | Fire) and self._flow is not None:
            return await self._flow.act(step, transcript)
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
        if agent.type == "http":
            completion = await self._engine.http_agents.complete(agent, self._run.id, transcript)
            return Draft.from_completion("agent", completion.model, completion)
        prompt = self._setup.config.prompts.agent or agent.system_prompt
        rules = agent.rules
        if self._flow is not None:  # in a conversation node: its instructions, its scripted rules
            prompt, node = self._flow.node_prompt(transcript)
            rules = node.rules if node is not None and node.rules is not None else rules
        request = CompletionRequest(
            model=model,
            messages=agent_view(prompt, transcript),
            tools=agent_tools(agent),
            temperature=agent.temperature,
            rules=(rules or []) if model == "scripted" else None,
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


def _extended(transcript: Sequence[TranscriptTurn], drafts: Sequence[Draft]) -> list[TranscriptTurn]:
    first = len(transcript) + 1
    return [*transcript, *(d.as_turn(first + i) for i, d in enumerate(drafts))]


def _spoken(draft: Draft) -> bool:
    """A turn boundary: the caller said something, or the agent did."""
    return draft.role == "persona" or (draft.role == "agent" and bool(draft.text))


def _ending(finish: Finish) -> Ending:
    return Ending(finish.reason, finish.error, finish.error_code)
