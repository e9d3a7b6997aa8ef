"""Flow agents' own endpoints: the hermetic flow simulator."""

from __future__ import annotations

from schemas.flows import FlowTestRequest, FlowTestResult
from service.gateway.endpoints import Endpoint
from service.gateway.handlers import flows

FLOW_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/agents/{id}/flow/test",
        flows.test_flow,
        "test_flow",
        "Play a flow agent against caller lines, without a run",
        "Agents",
        scope="flows:test",
        body=FlowTestRequest,
        responses={200: FlowTestResult},
        description=(
            "Plays the agent's flow (or an unsaved `flow_config` given in the body) hermetically: the "
            "caller says `caller_lines` in order and hangs up after the last; transitions are chosen "
            "by the scripted evaluator (a transition's label, or the most words of its description, "
            "in the caller's message); the agent answers with its scripted rules; every tool and "
            "integration is mocked. Returns the nodes entered in order and every row. No run is "
            "created and nothing is charged. 404 for a missing agent, 422 `NOT_A_FLOW_AGENT` for "
            "another type, 400 `FLOW_INVALID` for an unsaved flow with issues."
        ),
    ),
)
