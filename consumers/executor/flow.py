"""The I/O of a flow agent's steps (the decisions are `service.domain.flow_runtime`): the
evaluation step's model call, words said on the flow's behalf, and firing a node's tool.

With the `scripted` agent model nothing here calls a model: the evaluation is the deterministic
`scripted_choice`, a non-literal greeting or farewell is said as written, and `ai_extract`
arguments take the caller's last message. Tokens are still counted the scripted way (whitespace
words), so flow runs are priced and billed like any other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from pydantic import JsonValue

from consumers.executor.drafts import Draft
from consumers.executor.tools import ToolCaller
from consumers.llm.providers import Completion, CompletionRequest, Providers
from schemas.cases import Case
from schemas.flows import ConversationNode, IntegrationCallNode, ToolCallNode
from service.core.clock import Clock
from service.domain import flow_tools
from service.domain.flow_choice import (
    candidates,
    choice_messages,
    choice_schema,
    decision_event,
    read_choice,
    scripted_choice,
)
from service.domain.flow_runtime import Evaluate, Fire, Instructed, node_prompt
from service.domain.flows import FlowGraph
from service.domain.prompts import agent_view
from service.domain.scripted import tokens
from service.domain.transcript import TranscriptTurn

SCRIPTED = "scripted"


@dataclass(frozen=True)
class FlowRun:
    """What a flow run's steps need: the graph, the case as snapshotted, the agent's model and
    system prompt, and the run id (sent with real tool calls)."""

    graph: FlowGraph
    case: Case
    agent_model: str
    agent_prompt: str
    run_id: UUID


class FlowActor:
    def __init__(self, providers: Providers, tools: ToolCaller, clock: Clock, run: FlowRun) -> None:
        self._providers = providers
        self._tools = tools
        self._clock = clock
        self._run = run

    def node_prompt(self, transcript: Sequence[TranscriptTurn]) -> tuple[str, ConversationNode | None]:
        return node_prompt(transcript, self._run.graph, self._run.agent_prompt)

    async def act(
        self, step: Evaluate | Instructed | Fire, transcript: Sequence[TranscriptTurn]
    ) -> list[Draft]:
        if isinstance(step, Evaluate):
            return [await self._evaluate(step, transcript)]
        if isinstance(step, Instructed):
            return [await self._say(step.instruction, transcript)]
        return await self._fire(step, transcript)

    async def _evaluate(self, step: Evaluate, transcript: Sequence[TranscriptTurn]) -> Draft:
        node = step.node
        options = candidates(node, self._run.graph)
        message = next((t.text or "" for t in transcript if t.turn_number == step.turn_number), "")
        if self._run.agent_model == SCRIPTED:
            choice = scripted_choice(message, options)
            event = decision_event(node.id, choice, step.turn_number)
            sent = tokens(message) + sum(tokens(o.description) for o in options)
            return Draft("flow_event", flow_event=event, model=SCRIPTED, input_tokens=sent, output_tokens=2)
        request = CompletionRequest(
            model=self._run.agent_model,
            messages=choice_messages(node, options, transcript, self._run.graph.metadata),
            temperature=0,
            json_schema=choice_schema(options),
        )
        completion = await self._providers.complete(request)
        event = decision_event(node.id, read_choice(completion.text, options), step.turn_number)
        return Spent.of(self._run.agent_model, completion).draft(event)

    async def _say(self, instruction: str, transcript: Sequence[TranscriptTurn]) -> Draft:
        if self._run.agent_model == SCRIPTED:
            return Draft("agent", text=instruction, model=SCRIPTED, output_tokens=tokens(instruction))
        prompt = (
            f"{self._run.agent_prompt}\n\nSay this now, in your own words, and nothing else: {instruction}"
        )
        request = CompletionRequest(
            model=self._run.agent_model,
            messages=agent_view(prompt, transcript),
            temperature=self._run.case.agent.temperature,
        )
        completion = await self._providers.complete(request)
        return Draft.from_completion("agent", self._run.agent_model, completion)

    async def _fire(self, step: Fire, transcript: Sequence[TranscriptTurn]) -> list[Draft]:
        node, case = step.node, self._run.case
        extracted, spent = await self._extract(flow_tools.extraction_wanted(node.args_template), transcript)
        firing = flow_tools.prepare_firing(
            node, case.agent.tools, self._run.graph.metadata, transcript, extracted
        )
        started = self._clock.monotonic()
        answer = await self._answer(node, firing)
        duration_ms = int((self._clock.monotonic() - started) * 1000)
        event = flow_tools.result_event(node, firing, answer, duration_ms)
        return [
            Draft("agent", text=node.pre_fire_announcement or None, tool_calls=(firing.call,)),
            Draft("tool_result", tool_result=answer, latency_ms=duration_ms),
            spent.draft(event),
        ]

    async def _answer(
        self, node: ToolCallNode | IntegrationCallNode, firing: flow_tools.Firing
    ) -> dict[str, JsonValue]:
        if isinstance(node, IntegrationCallNode):
            return flow_tools.integration_answer(node, firing.call.arguments, firing.call.id)
        if firing.tool is None:
            return firing.missing_tool()
        case = self._run.case
        return await self._tools.answer(
            firing.call,
            [firing.tool],
            case.tool_policy,
            case.tool_allowlist,
            self._run.run_id,
            timeout_s=node.timeout_secs,
        )

    async def _extract(
        self, wanted: dict[str, str], transcript: Sequence[TranscriptTurn]
    ) -> tuple[dict[str, JsonValue], Spent]:
        """The `ai_extract` arguments, and what the model call that read them used (if any)."""
        if not wanted:
            return {}, Spent()
        if self._run.agent_model == SCRIPTED:
            values = flow_tools.scripted_extraction(wanted, transcript)
            sent = sum(tokens(t.text) for t in transcript if t.role in ("persona", "agent"))
            return values, Spent(SCRIPTED, sent, tokens(json.dumps(values)))
        request = CompletionRequest(
            model=self._run.agent_model,
            messages=flow_tools.extraction_messages(wanted, transcript),
            temperature=0,
            json_schema=flow_tools.extraction_schema(wanted),
        )
        completion = await self._providers.complete(request)
        return flow_tools.read_extraction(completion.text, wanted), Spent.of(
            self._run.agent_model, completion
        )


@dataclass(frozen=True)
class Spent:
    """A model call's usage, carried by the flow event it produced (priced as the agent's)."""

    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int | None = None

    @classmethod
    def of(cls, model: str, completion: Completion) -> Spent:
        return cls(model, completion.input_tokens, completion.output_tokens, completion.latency_ms)

    def draft(self, event: dict[str, JsonValue]) -> Draft:
        return Draft(
            "flow_event",
            flow_event=event,
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            latency_ms=self.latency_ms,
        )
