"""Agent overrides (DESIGN.md §6): agent ← case `agent_overrides` ← run `agent_overrides`,
a shallow merge of top-level keys where the last layer wins."""

from __future__ import annotations

from schemas.agents import Agent, AgentOverrides


def merge_agent(agent: Agent, *layers: AgentOverrides | None) -> Agent:
    """The agent a run actually uses (every layer's keys were validated on their own)."""
    data = agent.model_dump(mode="json")
    for layer in layers:
        if layer is not None:
            data.update(layer.changes())
    return Agent.model_validate(data)
