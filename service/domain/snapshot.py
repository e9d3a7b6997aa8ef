"""What a run records when it is triggered (DESIGN.md §4, §6): the case as it is now, with the
merged agent and the persona actually used, the exact system prompts, and the models."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.agents import Agent, AgentOverrides
from schemas.cases import Case
from schemas.runs import Prompts, RunConfig
from service.domain.overrides import merge_agent
from service.domain.prompts import agent_prompt, persona_prompt


@dataclass(frozen=True)
class Snapshot:
    config: RunConfig
    agent_model: str
    persona_model: str


def snapshot(
    case: Case, run_overrides: AgentOverrides | None, *, default_agent_model: str, default_persona_model: str
) -> Snapshot:
    """The immutable config of a run of `case` with the run's own overrides on top."""
    agent = merge_agent(case.agent, case.agent_overrides, run_overrides)
    prompts = Prompts(agent=agent_prompt(agent), persona=persona_prompt(case.persona, case.scenario))
    config = RunConfig(case=case.model_copy(update={"agent": agent}), prompts=prompts)
    return Snapshot(
        config,
        agent_model=served_by(agent, default_agent_model),
        persona_model=case.persona.model or default_persona_model,
    )


def served_by(agent: Agent, default_model: str) -> str:
    """The model a run records for the agent's side: an http agent is its own (`http`, or the
    model its endpoint names); any other the agent's model, or the default."""
    if agent.type == "http":
        endpoint_model = agent.endpoint.model if agent.endpoint is not None else None
        return f"http:{endpoint_model}" if endpoint_model else "http"
    return agent.model or default_model
