"""A run as the conversation engine plays it: its snapshot, models and rules, and — for a flow
agent — its graph; plus the one decision function the engine asks what happens next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consumers.executor.drafts import Draft
from schemas.runs import RunConfig
from service.core.errors import FlowUnreadable
from service.core.settings import Settings
from service.db.runs import RunRow
from service.domain.conversation import Greet, Rules, Speak, next_step, time_budget_ms
from service.domain.flow_runtime import Enter, FlowStep, entered_event, next_flow_step
from service.domain.flows import FlowGraph, read_flow
from service.domain.transcript import TranscriptTurn
from service.runs.triggers import default_models


@dataclass(frozen=True)
class Setup:
    """A run's snapshot, as the engine plays it. `flow_problem`: why a flow agent's graph cannot
    be played (the run then fails `FLOW_INVALID`)."""

    config: RunConfig
    agent_model: str
    persona_model: str
    rules: Rules
    graph: FlowGraph | None = None
    flow_problem: str | None = None

    def decide(
        self, transcript: Sequence[TranscriptTurn], elapsed_ms: int, *, agent_passed: bool = False
    ) -> FlowStep:
        """What happens next (a pure function of what is persisted)."""
        if self.graph is not None:
            return next_flow_step(transcript, self.graph, self.rules, elapsed_ms, agent_passed=agent_passed)
        return next_step(transcript, self.rules, elapsed_ms, agent_passed=agent_passed)

    def answers_at_once(self, step: FlowStep, scripted_latency_s: float) -> bool:
        """True when the step is a line of the `scripted` model simulating no latency: computed,
        not fetched, so it may join the round before it like a step without I/O."""
        if not isinstance(step, Speak) or step.after_tools or scripted_latency_s > 0:
            return False
        if step.who == "persona":
            return self.persona_model == "scripted"
        return self.agent_model == "scripted" and self.config.case.agent.type != "http"

    def said_without_io(self, step: FlowStep) -> Draft | None:
        """The row of a step that needs no model or tool (entering a node, a literal line), so it
        can join the round before it; None for any other step."""
        if isinstance(step, Enter) and self.graph is not None:
            return Draft("flow_event", flow_event=entered_event(self.graph, step))
        if isinstance(step, Greet):
            return Draft("agent", text=step.text)
        return None


def setup_of(run: RunRow, settings: Settings) -> Setup:
    config = RunConfig.model_validate(run.config)
    agent = config.case.agent
    rules = Rules(
        max_turns=config.case.max_turns,
        agent_speaks_first=agent.agent_speaks_first,
        greeting=agent.greeting_message,
        budget_ms=time_budget_ms(agent.max_call_duration_secs, settings.run_timeout_s),
        answers_tools=agent.type != "http",
    )
    agent_default, persona_default = default_models(settings)  # for runs stored without models
    graph, problem = _graph(config)
    return Setup(
        config,
        run.agent_model or agent_default.model,
        run.persona_model or persona_default.model,
        rules,
        graph,
        problem,
    )


def _graph(config: RunConfig) -> tuple[FlowGraph | None, str | None]:
    agent = config.case.agent
    if agent.type != "flow":
        return None, None
    if agent.flow_config is None:
        return None, "the flow agent has no flow_config"
    try:
        return read_flow(agent.flow_config.nodes, agent.flow_config.metadata), None
    except FlowUnreadable as exc:
        return None, f"the flow cannot be played: {exc}"
