"""`POST /agents/{id}/flow/test`: a flow agent played hermetically against caller lines, with
the scripted evaluator and mocked tools; no run is created and nothing is charged."""

from __future__ import annotations

from aiohttp import web

from schemas.flows import FlowTestRequest, FlowTestResult, FlowTestTurn
from service.core.errors import NotAFlowAgent
from service.db import agents
from service.db.postgres import transaction
from service.domain.agents import check_flow
from service.domain.flow_simulation import Simulation, simulate_flow
from service.domain.flows import read_flow
from service.gateway.appkeys import POOL
from service.gateway.handlers.parsing import parse_body, path_id
from service.gateway.handlers.responses import json_response, principal


async def test_flow(request: web.Request) -> web.Response:
    agent_id = path_id(request)
    body = await parse_body(request, FlowTestRequest)
    async with transaction(request.app[POOL]) as conn:
        agent = await agents.get_agent(conn, principal(request).company_id, agent_id)
    flow = body.flow_config or agent.flow_config
    if agent.type != "flow" or flow is None:
        raise NotAFlowAgent(f"Agent {agent_id} is a {agent.type} agent; only flow agents have a flow to test")
    check_flow(flow)  # an unsaved flow gets the same 400 FLOW_INVALID as saving it would
    graph = read_flow(flow.nodes, flow.metadata)
    played = simulate_flow(agent, graph, body.caller_lines, max_turns=body.max_turns)
    return json_response(result_of(str(agent_id), played))


def result_of(agent_id: str, played: Simulation) -> FlowTestResult:
    turns = [
        FlowTestTurn.model_validate(
            {
                "turn_number": t.turn_number,
                "role": t.role,
                "text": t.text,
                "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in t.tool_calls]
                or None,
                "tool_result": t.tool_result,
                "flow_event": t.flow_event,
            }
        )
        for t in played.transcript
    ]
    return FlowTestResult(
        agent_id=agent_id,
        path=played.path(),
        termination_reason=played.termination_reason,
        error=played.error,
        turns=turns,
    )
