"""Agent overrides (DESIGN.md §6): agent ← case `agent_overrides` ← run `agent_overrides`,
a shallow merge of top-level keys where the last layer wins.

An overriding `endpoint` (an http agent pointed at staging) replaces the agent's whole, but
cannot carry secrets: it takes the agent's stored ones, which its headers may use. The merged
agent is what a run stores, so its endpoint keeps the sealed secrets when serialised for the
snapshot (every view of the run still shows `***`).
"""

from __future__ import annotations

from schemas.agents import Agent, AgentOverrides
from service.domain.endpoints import overriding_endpoint

ENDPOINT_FIELD = "body.agent_overrides.endpoint"


def merge_agent(agent: Agent, *layers: AgentOverrides | None) -> Agent:
    """The agent a run actually uses (every layer's keys were validated on their own); 400 for
    an endpoint override the agent cannot take (not an http agent, unknown secrets)."""
    data = agent.model_dump(mode="json", exclude={"endpoint"})
    endpoint = agent.endpoint
    for layer in layers:
        if layer is None:
            continue
        changes = layer.changes()
        if "endpoint" in changes:
            del changes["endpoint"]
            endpoint = overriding_endpoint(agent.type, agent.endpoint, layer.endpoint, ENDPOINT_FIELD)
        data.update(changes)
    merged = Agent.model_validate(data)
    return merged.model_copy(update={"endpoint": None if endpoint is None else endpoint.storable()})
